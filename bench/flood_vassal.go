package main

// The flooding vassal of the flood section: the flooder itself (this
// binary in floodMode) and how the bench follows it.

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// floodVassal is the flooder's main: it writes floodByte in floodChunk
// writes to the Emperor's channel until the deadline in args[0] (UNIX
// milliseconds), until the channel fails, or until the Emperor sends it
// anything (a stop), then exits 0. A respawn after the deadline exits at
// once.
func floodVassal(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "flood vassal: want one argument, the deadline in UNIX ms")
		return 2
	}
	until, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood vassal:", err)
		return 2
	}
	deadline := time.UnixMilli(until)
	fd := 3
	if v := os.Getenv("UWSGI_EMPEROR_FD"); v != "" {
		if fd, err = strconv.Atoi(v); err != nil {
			fmt.Fprintln(os.Stderr, "flood vassal: UWSGI_EMPEROR_FD:", err)
			return 2
		}
	}
	buf := make([]byte, floodChunk)
	for i := range buf {
		buf[i] = floodByte
	}
	began := time.Now()
	var sent atomic.Int64
	// A write blocks while the Emperor does not read: the deadline is
	// enforced from outside the loop.
	time.AfterFunc(time.Until(deadline), func() {
		fmt.Fprintf(os.Stderr, "flood vassal %d: deadline: wrote %d bytes in %v\n", os.Getpid(), sent.Load(), time.Since(began).Round(time.Millisecond))
		os.Exit(0)
	})
	// Whatever the Emperor sends (a stop at Ragnarok, or EOF) ends it.
	go func() {
		var b [1]byte
		for {
			n, err := unix.Read(fd, b[:])
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
				continue
			}
			fmt.Fprintf(os.Stderr, "flood vassal %d: the Emperor sent %v (read: %v): stopping; wrote %d bytes in %v\n", os.Getpid(), b[:max(n, 0)], err, sent.Load(), time.Since(began).Round(time.Millisecond))
			os.Exit(0)
		}
	}()
	for time.Now().Before(deadline) {
		n, err := unix.Write(fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 100)
			continue
		case err != nil:
			fmt.Fprintf(os.Stderr, "flood vassal %d: fd %d: %v; wrote %d bytes in %v\n", os.Getpid(), fd, err, sent.Load(), time.Since(began).Round(time.Millisecond))
			return 0
		}
		sent.Add(int64(n))
	}
	return 0
}

// floodConfig is the flooding vassal's config: uWSGI execs the flooder in
// its own place, with the Emperor's channel still open.
func floodConfig(self string, deadline time.Time) string {
	// uWSGI runs the patch through /bin/sh -c: exec, so that the flooder
	// is the vassal process itself, not a child of a shell.
	return fmt.Sprintf("[uwsgi]\nprivileged-binary-patch-arg = exec %s %s %d\n", self, floodMode, deadline.UnixMilli())
}

// floodDefs are the section's rows, quiet and flooded in pairs.
// flooderWatch follows the flooding vassal: the Emperor's child running
// this binary.
type flooderWatch struct {
	fr    *floodRun
	h     *pidfd
	since time.Time // when h was first seen
	seen  map[int]bool
	alive time.Duration // time the flooders were seen running, summed
}

func (fl *flooderWatch) pid() int {
	if fl.h == nil {
		return 0
	}
	return fl.h.pid
}

// wait returns a handle on a flooder that has run for floodWarmup, waiting
// for one (a respawn) until the deadline.
func (fl *flooderWatch) wait(deadline time.Time) (*pidfd, bool) {
	if fl.seen == nil {
		fl.seen = map[int]bool{}
	}
	for time.Now().Before(deadline) {
		if fl.h != nil && fl.h.exited() {
			fl.alive += time.Since(fl.since) // to when it was found dead, not exactly its exit
			fl.h.Close()
			fl.h = nil
		}
		if fl.h == nil {
			for _, p := range children(fl.fr.r.pid) {
				if exePath(p) != fl.fr.self {
					continue
				}
				if h, err := openPidfd(p); err == nil {
					fl.h, fl.since = h, time.Now()
					fl.seen[p] = true
					break
				}
			}
		}
		if fl.h != nil && time.Since(fl.since) >= floodWarmup {
			return fl.h, true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, false
}

func (fl *flooderWatch) close() {
	if fl.h != nil {
		fl.alive += time.Since(fl.since)
		fl.h.Close()
		fl.h = nil
	}
}

// floodPorts picks n distinct free loopback ports.
