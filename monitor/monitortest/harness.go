package monitortest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/monitor"
)

// Wait bounds every wait of a Harness: generous, for loaded machines.
const Wait = 20 * time.Second

// Harness runs one real monitor for a test and records what it emits and
// logs. Tests wait on events and log lines with a deadline, never sleep.
type Harness struct {
	T      testing.TB
	M      monitor.Monitor
	Events chan monitor.Event
	Log    *LogBuffer
	ready  chan string
	// Seen holds every event received so far, in order.
	Seen []monitor.Event
}

// Build constructs a monitor with factory, giving it a ready channel and a
// logger that records into h.Log. Freq defaults to an hour, so that a test
// sees only what it provokes.
func Build(t testing.TB, factory monitor.Factory, arg string, opts monitor.Options) *Harness {
	t.Helper()
	h := &Harness{T: t, Events: make(chan monitor.Event, 4096), Log: &LogBuffer{}, ready: make(chan string, 1)}
	opts.Ready = h.ready
	opts.Logger = slog.New(slog.NewTextHandler(h.Log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.Freq == 0 {
		opts.Freq = time.Hour
	}
	m, err := factory(arg, opts)
	if err != nil {
		t.Fatalf("%s: %v", arg, err)
	}
	h.M = m
	return h
}

// Start runs the monitor until the test ends, and checks that Run then
// returns nil.
func (h *Harness) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.M.Run(ctx, h.Events) }()
	h.T.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.T.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(Wait):
			h.T.Errorf("Run did not return after cancel")
		}
	})
}

// WaitReady waits for the monitor's first scan.
func (h *Harness) WaitReady() {
	h.T.Helper()
	select {
	case id := <-h.ready:
		if id != h.M.ID() {
			h.T.Fatalf("ready sent %q, want %q", id, h.M.ID())
		}
	case <-time.After(Wait):
		h.T.Fatalf("monitor %s never became ready; log:\n%s", h.M, h.Log)
	}
}

// WaitFor returns the first event, received from now on, matching pred.
func (h *Harness) WaitFor(what string, pred func(monitor.Event) bool) monitor.Event {
	h.T.Helper()
	deadline := time.NewTimer(Wait)
	defer deadline.Stop()
	for {
		select {
		case ev := <-h.Events:
			h.Seen = append(h.Seen, ev)
			if pred(ev) {
				return ev
			}
		case <-deadline.C:
			h.T.Fatalf("timed out waiting for %s; events so far: %s; log:\n%s", what, Describe(h.Seen), h.Log)
			return monitor.Event{}
		}
	}
}

// WaitEvent waits for an event with op for the vassal name.
func (h *Harness) WaitEvent(op monitor.Op, name string) monitor.Event {
	h.T.Helper()
	return h.WaitFor(op.String()+" "+name, func(ev monitor.Event) bool { return ev.Op == op && ev.Key.Name == name })
}

// WaitSet waits, in any order, for one event per entry of want (vassal
// name to op) among the events received from now on, and returns them by
// name.
func (h *Harness) WaitSet(want map[string]monitor.Op) map[string]monitor.Event {
	h.T.Helper()
	got := map[string]monitor.Event{}
	for len(got) < len(want) {
		h.WaitFor(fmt.Sprint("all of ", want), func(ev monitor.Event) bool {
			if op, ok := want[ev.Key.Name]; ok && op == ev.Op {
				got[ev.Key.Name] = ev
				return true
			}
			return false
		})
	}
	return got
}

// Drain returns the events already delivered, without waiting.
func (h *Harness) Drain() []monitor.Event {
	var got []monitor.Event
	for {
		select {
		case ev := <-h.Events:
			h.Seen = append(h.Seen, ev)
			got = append(got, ev)
		default:
			return got
		}
	}
}

// WaitLog waits until the log holds a line containing every one of parts,
// and returns that line.
func (h *Harness) WaitLog(parts ...string) string {
	h.T.Helper()
	return h.Log.WaitFor(h.T, parts...)
}

// Describe lists events compactly for failure messages.
func Describe(evs []monitor.Event) string {
	var b strings.Builder
	b.WriteString("[")
	for i, ev := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s (%s)", ev.Op, ev.Key.Name, ev.Reason)
	}
	b.WriteString("]")
	return b.String()
}

// LogBuffer is an io.Writer for a slog handler that tests can search.
type LogBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Reset forgets what was logged so far.
func (l *LogBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

// Find returns the first line containing every one of parts, or "".
func (l *LogBuffer) Find(parts ...string) string {
	for _, line := range strings.Split(l.String(), "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok && line != "" {
			return line
		}
	}
	return ""
}

// Count returns how many lines contain every one of parts.
func (l *LogBuffer) Count(parts ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

// WaitFor waits until the log holds a line containing every one of parts,
// and returns it; it fails the test after Wait.
func (l *LogBuffer) WaitFor(t testing.TB, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		if line := l.Find(parts...); line != "" {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q; log:\n%s", parts, l)
		}
		l.wait(100 * time.Millisecond)
	}
}

// wait returns after the next write or after d.
func (l *LogBuffer) wait(d time.Duration) {
	l.mu.Lock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	ch := l.changed
	l.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}
