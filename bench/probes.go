package main

// The measurements' tools: spreading events over the scan period, stall
// notes, vassal configs, HTTP probes and the rows of samples.

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// phases spreads the moments of a row's events evenly over the Emperors'
// scan period. The bench's own steps follow the Emperor's (it waits for
// the log line, for a reload, ...), so without this every event would land
// at the same point of uWSGI's scan cycle and measure that one point.
// Stratified: each of the reps strata of the period gets one event, in a
// random order.
type phases struct {
	order []int
	i     int
}

func newPhases(reps int) *phases { return &phases{order: rand.Perm(reps)} }

// wait sleeps until the next event's phase.
func (p *phases) wait() {
	k := p.order[p.i%len(p.order)]
	p.i++
	f := (float64(k) + rand.Float64()) / float64(len(p.order))
	time.Sleep(time.Duration(f * float64(scanPeriod)))
}

var inf = math.Inf(1)

// lateNS sums how late the bench's own 10 ms timer fired, counting only
// delays over 100 ms: a sign that the machine (a VM, another tenant, or
// the vassals booting) starved everything, the bench and Emperors alike.
var lateNS atomic.Int64

func watchStalls() {
	go func() {
		const tick = 10 * time.Millisecond
		last := time.Now()
		for {
			time.Sleep(tick)
			now := time.Now()
			if gap := now.Sub(last); gap > 100*time.Millisecond {
				lateNS.Add(int64(gap - tick))
			}
			last = now
		}
	}()
}

// noteStalls adds a note to key if the machine stalled since mark.
func noteStalls(rows *rowSet, key string, mark int64) {
	if d := time.Duration(lateNS.Load() - mark); d > 0 {
		rows.note(key, "the machine stalled for %v in all while this was measured (the bench's 10 ms timer fired over 100 ms late)", d.Round(time.Millisecond))
	}
}

// vassalConfig is the vassal every measurement uses: a real uWSGI master
// with one worker answering 200 from its internal router, no Python.
func vassalConfig(port int) string {
	return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nmaster = true\nprocesses = 1\nroute-run = return:200\n", port)
}

// writeConfig puts a config in place atomically (written aside, then
// renamed), as deploy tools do, so no Emperor ever reads half a file. It
// returns the moment of the rename.
func writeConfig(dir, name string, port int) (time.Time, error) {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(vassalConfig(port)), 0o644); err != nil {
		return time.Time{}, err
	}
	t := time.Now()
	return t, os.Rename(tmp, filepath.Join(dir, name))
}

// get does one GET / on a loopback port and reports whether it returned
// 200. A connection the kernel accepted waits in the backlog until a worker
// takes it, so a 200 is the moment a worker served.
func get(port int, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return false
	}
	f := strings.Fields(line)
	return len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/") && f[1] == "200"
}

// waitServing polls port until it answers 200 and returns that moment.
func waitServing(port int, every time.Duration, deadline time.Time) (time.Time, error) {
	for {
		if get(port, min(2*time.Second, max(time.Until(deadline), time.Millisecond))) {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("port %d not serving: %w", port, errTimeout)
		}
		time.Sleep(every)
	}
}

// portFree reports whether nothing listens on a loopback port.
func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// progress prints one line of progress on stderr.
func progress(kind, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %-5s  %s\n", time.Now().Format("15:04:05.000"), kind, fmt.Sprintf(format, args...))
}

// rowSet is what one measurement group returns: samples by row key, and
// notes by row key.
type rowSet struct {
	samples map[string][]float64
	notes   map[string][]string
}

func newRowSet() *rowSet {
	return &rowSet{samples: map[string][]float64{}, notes: map[string][]string{}}
}

func (s *rowSet) add(key string, v float64) { s.samples[key] = append(s.samples[key], v) }

func (s *rowSet) note(key, format string, args ...any) {
	s.notes[key] = append(s.notes[key], fmt.Sprintf(format, args...))
}

// waitLoyal waits until the Emperor logs that config's vassal became loyal
// after the log offset. Both Emperors delay a respawn after a death that
// happens before loyalty, so the disruptive rows only act on loyal vassals.
