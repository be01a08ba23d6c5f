package main

// /proc helpers and exact process-exit waits (pidfds). Everything here reads
// the kernel's view of processes the bench did not necessarily start: the
// Emperor's vassal masters and their workers.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
// Linux fixes it at 100 on every architecture we run on.
const clockTicks = 100

// children lists the direct children of pid. A multithreaded parent (our
// Emperor is a Go program) records each child under the thread that forked
// it, so every task's list is read.
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// descendants lists every process below pid, children first.
func descendants(pid int) []int {
	var out []int
	queue := children(pid)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, p)
		queue = append(queue, children(p)...)
	}
	return out
}

// exePath is the binary pid runs, or "" once it is gone.
func exePath(pid int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return s
}

// cmdline is pid's argv.
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// statFields are the fields of /proc/PID/stat after the command name, so
// that statFields[0] is field 3 (state) of proc(5).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// cpuTicks is utime+stime of pid (every thread), in clock ticks.
func cpuTicks(pid int) (int64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	// utime and stime are fields 14 and 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + s, nil
}

// cpuClock is the CPU time pid's whole thread group has used, in
// nanoseconds, from its process CPU-time clock (the kernel's
// sum_exec_runtime; the ticks of /proc/PID/stat are only 10 ms apart).
func cpuClock(pid int) (time.Duration, error) {
	// The clock id of another process's CPUCLOCK_SCHED, as
	// clock_getcpuclockid(3) builds it: ~pid << 3 | 2.
	id := int32(^uint32(pid)<<3 | 2)
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0, os.NewSyscallError("clock_gettime", err)
	}
	return time.Duration(ts.Nano()), nil
}

// statusKiB reads a "Key: N kB" line of /proc/PID/status.
func statusKiB(pid int, key string) (int64, error) {
	return kibLine(fmt.Sprintf("/proc/%d/status", pid), key)
}

// memAvailable is MemAvailable of /proc/meminfo, in bytes.
func memAvailable() (int64, error) {
	k, err := kibLine("/proc/meminfo", "MemAvailable")
	return k * 1024, err
}

func kibLine(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// pidfd is a handle on one process: its exit is seen exactly, and its pid
// cannot be recycled under us while the handle is open.
type pidfd struct {
	pid int
	fd  int
}

func openPidfd(pid int) (*pidfd, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return &pidfd{pid: pid, fd: fd}, nil
}

func (p *pidfd) Close() {
	if p != nil && p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
	}
}

// exited reports, without blocking, whether the process has exited.
func (p *pidfd) exited() bool {
	fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}

// signal sends sig through the handle (never to a recycled pid).
func (p *pidfd) signal(sig unix.Signal) error {
	return unix.PidfdSendSignal(p.fd, sig, nil, 0)
}

// waitExit blocks until the process exits or the deadline passes, and
// returns the moment the kernel reported the exit.
func (p *pidfd) waitExit(deadline time.Time) (time.Time, error) {
	var when time.Time
	err := waitAllExit([]*pidfd{p}, deadline, func(_ *pidfd, t time.Time) { when = t })
	return when, err
}

// waitAllExit blocks until every process has exited or the deadline
// passes, calling done (if not nil) with each exit's moment. A timeout
// leaves the survivors' handles open.
func waitAllExit(ps []*pidfd, deadline time.Time, done func(*pidfd, time.Time)) error {
	left := slices.Clone(ps)
	fds := make([]unix.PollFd, 0, len(left))
	for len(left) > 0 {
		ms := time.Until(deadline).Milliseconds()
		if ms <= 0 {
			return fmt.Errorf("%d of %d processes still running: %w", len(left), len(ps), errTimeout)
		}
		fds = fds[:0]
		for _, p := range left {
			fds = append(fds, unix.PollFd{Fd: int32(p.fd), Events: unix.POLLIN})
		}
		n, err := unix.Poll(fds, int(min(ms, 1000)))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return os.NewSyscallError("poll", err)
		}
		if n == 0 {
			continue
		}
		now := time.Now()
		keep := left[:0]
		for i, p := range left {
			if fds[i].Revents != 0 {
				if done != nil {
					done(p, now)
				}
				continue
			}
			keep = append(keep, p)
		}
		left = keep
	}
	return nil
}

var errTimeout = errors.New("timeout")
