package main

// Following an Emperor's log for the scale vassals' marks.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// markLog follows one log file and keeps, per vassal and event, the
// latest mark seen, and per event how many distinct vassals have one.
type markLog struct {
	path string
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	last   map[string]time.Time // name + " " + event → latest mark
	counts map[string]int       // event → distinct vassals with a mark
	latest map[string]time.Time // event → latest mark of any vassal
}

// followMarks starts reading path (from its beginning) every few ms.
func followMarks(path string) *markLog {
	l := &markLog{
		path: path, stop: make(chan struct{}), done: make(chan struct{}),
		last: map[string]time.Time{}, counts: map[string]int{}, latest: map[string]time.Time{},
	}
	go l.run()
	return l
}

func (l *markLog) run() {
	defer close(l.done)
	var off int64
	var partial []byte
	buf := make([]byte, 256<<10)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if f, err := os.Open(l.path); err == nil {
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				for {
					n, err := f.Read(buf)
					off += int64(n)
					partial = append(partial, buf[:n]...)
					partial = l.consume(partial)
					if err != nil || n == 0 {
						break
					}
				}
			}
			f.Close()
		}
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
	}
}

// consume records every whole line of b and returns what is left.
func (l *markLog) consume(b []byte) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return b
		}
		if m, ok := parseScaleMark(string(b[:i])); ok {
			key := m.name + " " + m.event
			if _, seen := l.last[key]; !seen {
				l.counts[m.event]++
			}
			l.last[key] = m.at
			if m.at.After(l.latest[m.event]) {
				l.latest[m.event] = m.at
			}
		}
		b = b[i+1:]
	}
}

func (l *markLog) close() {
	close(l.stop)
	<-l.done
}

// count is how many distinct vassals have marked event, and the latest
// such mark.
func (l *markLog) count(event string) (int, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[event], l.latest[event]
}

// stallLimit ends a wait for many vassals that no longer makes progress:
// no new mark for this long (an Emperor out of fds, say).
const stallLimit = 30 * time.Second

// waitCount waits until n distinct vassals have marked event and returns
// the latest mark; on timeout, or when no vassal marked it for stallLimit,
// it returns the count reached.
func (l *markLog) waitCount(event string, n int, deadline time.Time) (time.Time, int, error) {
	last, progress := -1, time.Now()
	for {
		c, at := l.count(event)
		if c >= n {
			return at, c, nil
		}
		if c != last {
			last, progress = c, time.Now()
		}
		if time.Now().After(deadline) {
			return time.Time{}, c, fmt.Errorf("%d of %d vassals marked %q: %w", c, n, event, errTimeout)
		}
		if time.Since(progress) > stallLimit {
			return time.Time{}, c, fmt.Errorf("%d of %d vassals marked %q, none for %v: %w", c, n, event, stallLimit, errTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitMark waits for vassal name's mark of event later than after.
func (l *markLog) waitMark(name, event string, after, deadline time.Time) (time.Time, error) {
	for {
		l.mu.Lock()
		at := l.last[name+" "+event]
		l.mu.Unlock()
		if at.After(after) {
			return at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("vassal %s: no %q mark: %w", name, event, errTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}
