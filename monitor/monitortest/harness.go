package monitortest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
)

// Harness runs one real monitor for a test and records what it emits and
// logs: the one way tests of every monitor package run theirs. Tests wait
// on events and log lines for at most testkit.Deadline, never sleep.
type Harness struct {
	T      testing.TB
	M      monitor.Monitor
	Events chan monitor.Event
	Log    *testkit.Log
	// Seen holds every event received so far, in order.
	Seen []monitor.Event

	ready chan string
	done  chan error // Run's result, once started
	stop  func()
}

// Build constructs a monitor with factory (a package's New, or monitor.Open
// for a whole "scheme://..." value), giving it a ready channel and a logger
// that records into h.Log. Freq defaults to an hour, so that a test sees
// only what it provokes.
func Build(t testing.TB, factory monitor.Factory, arg string, opts monitor.Options) *Harness {
	t.Helper()
	h := &Harness{T: t, Events: make(chan monitor.Event, 4096), Log: &testkit.Log{}, ready: make(chan string, 1)}
	opts.Ready = h.ready
	opts.Logger = h.Log.Logger()
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

// Start builds the monitor (see Build), runs it and waits until it is
// ready.
func Start(t testing.TB, factory monitor.Factory, arg string, opts monitor.Options) *Harness {
	t.Helper()
	h := Build(t, factory, arg, opts)
	h.Start()
	h.WaitReady()
	return h
}

// Start runs the monitor until Stop or the end of the test.
func (h *Harness) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.done = make(chan error, 1)
	go func(done chan<- error) { done <- h.M.Run(ctx, h.Events) }(h.done)
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-h.done:
				if err != nil {
					h.T.Errorf("monitor %s: Run returned %v, want nil", h.M, err)
				}
			case <-time.After(testkit.Deadline):
				h.T.Errorf("monitor %s: Run did not return after cancel", h.M)
			}
		})
	}
	h.T.Cleanup(h.stop)
}

// Stop cancels the monitor and waits for its Run to return nil.
func (h *Harness) Stop() {
	if h.stop != nil {
		h.stop()
	}
}

// WaitReady waits for the monitor's first scan.
func (h *Harness) WaitReady() {
	h.T.Helper()
	select {
	case id := <-h.ready:
		if id != h.M.ID() {
			h.T.Fatalf("ready sent %q, want %q", id, h.M.ID())
		}
	case err := <-h.done:
		h.T.Fatalf("monitor %s ended before ready: %v; log:\n%s", h.M, err, h.Log)
	case <-time.After(testkit.Deadline):
		h.T.Fatalf("monitor %s never became ready; log:\n%s", h.M, h.Log)
	}
}

// Next returns the next event, whatever it is.
func (h *Harness) Next(what string) monitor.Event {
	h.T.Helper()
	return h.WaitFor(what, func(monitor.Event) bool { return true })
}

// Expect returns the next event and fails unless it is op for name.
func (h *Harness) Expect(op monitor.Op, name string) monitor.Event {
	h.T.Helper()
	ev := h.Next(fmt.Sprintf("%s %s", op, name))
	if ev.Op != op || ev.Key.Name != name {
		h.T.Fatalf("got %s, want %s %s", Describe([]monitor.Event{ev}), op, name)
	}
	return ev
}

// WaitFor returns the first event, received from now on, matching pred.
func (h *Harness) WaitFor(what string, pred func(monitor.Event) bool) monitor.Event {
	h.T.Helper()
	deadline := time.NewTimer(testkit.Deadline)
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

// Want is one expected event: an op for a vassal name.
type Want struct {
	Op   monitor.Op
	Name string
}

// Touch is a Want of a Touch for name.
func Touch(name string) Want { return Want{monitor.Touch, name} }

// Destroy is a Want of a Destroy for name.
func Destroy(name string) Want { return Want{monitor.Destroy, name} }

// Mark returns the index in Seen of the next event to be received, for
// WaitSet.
func (h *Harness) Mark() int { return len(h.Seen) }

// WaitSet waits until, among the events received since mark (see Mark),
// there is one for each of want, in any order, and returns the last of
// each.
func (h *Harness) WaitSet(mark int, want ...Want) map[Want]monitor.Event {
	h.T.Helper()
	missing := map[Want]bool{}
	for _, w := range want {
		missing[w] = true
	}
	got := map[Want]monitor.Event{}
	take := func(ev monitor.Event) bool {
		w := Want{ev.Op, ev.Key.Name}
		if _, wanted := missing[w]; !wanted {
			return false
		}
		got[w] = ev
		missing[w] = false
		return true
	}
	for _, ev := range h.Seen[mark:] {
		take(ev)
	}
	for len(got) < len(missing) {
		h.WaitFor(fmt.Sprint("all of ", want), take)
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

// ExpectNone fails the test, saying why, if evs holds any event.
func (h *Harness) ExpectNone(evs []monitor.Event, why string) {
	h.T.Helper()
	if len(evs) > 0 {
		h.T.Errorf("%s: unexpected events %s", why, Describe(evs))
	}
}

// WaitLog waits until the log holds a line containing every one of parts,
// and returns that line.
func (h *Harness) WaitLog(parts ...string) string {
	h.T.Helper()
	return h.Log.WaitFor(h.T, parts...)
}

// WaitLogs waits until at least n log lines contain every one of parts.
func (h *Harness) WaitLogs(n int, parts ...string) {
	h.T.Helper()
	if !h.Log.Await(testkit.Deadline, func() bool { return h.Log.Count(parts...) >= n }) {
		h.T.Fatalf("timed out waiting for %d log lines with %q; log:\n%s", n, parts, h.Log)
	}
}

// Describe lists events compactly for failure messages.
func Describe(evs []monitor.Event) string {
	var b strings.Builder
	b.WriteString("[")
	for i, ev := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s (%s) v=%+v", ev.Op, ev.Key.Name, ev.Reason, ev.Version)
	}
	b.WriteString("]")
	return b.String()
}
