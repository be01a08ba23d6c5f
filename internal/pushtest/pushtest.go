// Package pushtest helps the tests of the push monitors (amqp://, zmq://):
// run a monitor and collect its events and log lines, wait for them with a
// deadline, and run an in-process Emperor whose vassals are real uWSGI.
package pushtest

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

// Wait is the deadline of every wait: generous, the machine may be loaded.
const Wait = 30 * time.Second

// Logs is a slog destination tests can search.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Count returns how many log lines contain every one of subs.
func (l *Logs) Count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.buf.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// WaitCount waits until at least n log lines contain every one of subs.
func (l *Logs) WaitCount(t testing.TB, n int, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for l.Count(subs...) < n {
		if time.Now().After(deadline) {
			l.mu.Lock()
			t.Fatalf("timed out waiting for %d log lines with %q; log:\n%s", n, subs, l.buf.String())
			l.mu.Unlock()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logger returns a logger writing text lines into l.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Run is a running monitor: its events and its log. Stop (also called at
// cleanup) cancels it and waits for its Run to return.
type Run struct {
	Events chan monitor.Event
	Logs   *Logs
	stop   func()
	t      testing.TB
}

// Start opens the monitor for value with opts (Logger and Ready are
// filled in) and runs it. It returns once the monitor reported ready.
func Start(t testing.TB, value string, opts monitor.Options) *Run {
	t.Helper()
	logs := &Logs{}
	ready := make(chan string, 1)
	opts.Logger, opts.Ready = logs.Logger(), ready
	m, err := monitor.Open(value, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &Run{Events: make(chan monitor.Event, 256), Logs: logs, t: t}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, r.Events) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("monitor %s: Run: %v", m, err)
				}
			case <-time.After(Wait):
				t.Errorf("monitor %s did not stop", m)
			}
		})
	}
	t.Cleanup(r.stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("monitor %s ended before ready: %v\n%s", m, err, logs.buf.String())
	case <-time.After(Wait):
		t.Fatalf("monitor %s never ready", m)
	}
	return r
}

// Stop cancels the monitor and waits for it.
func (r *Run) Stop() { r.stop() }

// Next returns the next event, failing the test after the deadline.
func (r *Run) Next(what string) monitor.Event {
	r.t.Helper()
	select {
	case ev := <-r.Events:
		return ev
	case <-time.After(Wait):
		r.Logs.mu.Lock()
		defer r.Logs.mu.Unlock()
		r.t.Fatalf("timed out waiting for %s; log:\n%s", what, r.Logs.buf.String())
	}
	return monitor.Event{}
}

// Expect returns the next event and checks its op and name.
func (r *Run) Expect(op monitor.Op, name string) monitor.Event {
	r.t.Helper()
	ev := r.Next(fmt.Sprintf("%s %s", op, name))
	if ev.Op != op || ev.Key.Name != name {
		r.t.Fatalf("got %s %s (%s), want %s %s", ev.Op, ev.Key.Name, ev.Reason, op, name)
	}
	return ev
}
