// Package testkit holds what every test of this module shares: the one
// deadline a test waits for anything, and the log capture tests search and
// wait on. Waits here wake on a change, never on a poll interval.
package testkit

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Deadline bounds every wait of every test: how long a test waits for
// something it expects before failing. It is generous on purpose, because a
// loaded 2-core CI box can be slow; a passing test never waits for it. A
// property about how fast something happens belongs in `make bench`, never
// in a test.
const Deadline = 60 * time.Second

// Log is a log capture: an io.Writer for a slog handler that tests can
// search and wait on. The zero value is ready to use.
type Log struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and cleared by the next Write
}

// NewLog returns a capture and a debug-level text logger that writes to it.
func NewLog() (*Log, *slog.Logger) {
	l := &Log{}
	return l, l.Logger()
}

// Logger returns a debug-level text logger that writes into l.
func (l *Log) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write appends p and wakes every waiter.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Reset forgets what was logged so far.
func (l *Log) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

// Lines returns every line containing all of parts, in order.
func (l *Log) Lines(parts ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if line != "" && containsAll(line, parts) {
			out = append(out, line)
		}
	}
	return out
}

// Find returns the first line containing every one of parts, or "".
func (l *Log) Find(parts ...string) string {
	if lines := l.Lines(parts...); len(lines) > 0 {
		return lines[0]
	}
	return ""
}

// Count returns how many lines contain every one of parts.
func (l *Log) Count(parts ...string) int { return len(l.Lines(parts...)) }

// WaitFor waits until a line holds every one of parts and returns it; it
// fails the test after Deadline, printing the log.
func (l *Log) WaitFor(t testing.TB, parts ...string) string {
	t.Helper()
	var line string
	if !l.Await(Deadline, func() bool { line = l.Find(parts...); return line != "" }) {
		t.Fatalf("no log line with %q within %s; log:\n%s", parts, Deadline, l)
	}
	return line
}

// Await waits until cond (evaluated now and after every write) holds, or
// d passes; it reports whether cond held.
func (l *Log) Await(d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return cond()
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
