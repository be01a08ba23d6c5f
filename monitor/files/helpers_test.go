package files_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/files"
)

// waitTimeout bounds every wait: generous, for loaded CI machines.
const waitTimeout = 10 * time.Second

// harness runs one monitor and records what it emits and logs.
type harness struct {
	t      *testing.T
	m      monitor.Monitor
	events chan monitor.Event
	ready  chan string
	logs   *logRecorder
	// seen holds every event received so far, in order.
	seen    []monitor.Event
	barrier int
}

// newHarness builds a monitor with factory (files.NewDir or files.NewGlob),
// runs it, and waits for its ready signal.
func newHarness(t *testing.T, factory monitor.Factory, arg string, opts monitor.Options) *harness {
	t.Helper()
	h := build(t, factory, arg, opts)
	h.start()
	h.waitReady()
	return h
}

// build constructs the monitor without running it.
func build(t *testing.T, factory monitor.Factory, arg string, opts monitor.Options) *harness {
	t.Helper()
	h := &harness{
		t:      t,
		events: make(chan monitor.Event, 4096),
		ready:  make(chan string, 1),
		logs:   newLogRecorder(),
	}
	opts.Ready = h.ready
	opts.Logger = slog.New(h.logs)
	if opts.Freq == 0 {
		opts.Freq = time.Hour // tests rely on inotify unless they say otherwise
	}
	m, err := factory(arg, opts)
	if err != nil {
		t.Fatalf("%s: %v", arg, err)
	}
	h.m = m
	return h
}

// start runs the monitor until the test ends.
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx, h.events) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(waitTimeout):
			h.t.Errorf("Run did not return after cancel")
		}
	})
}

func (h *harness) waitReady() {
	h.t.Helper()
	select {
	case id := <-h.ready:
		if id != h.m.ID() {
			h.t.Fatalf("ready sent %q, want %q", id, h.m.ID())
		}
	case <-time.After(waitTimeout):
		h.t.Fatalf("monitor %s never became ready", h.m)
	}
}

// waitFor returns the first event (received from now on) matching pred.
func (h *harness) waitFor(what string, pred func(monitor.Event) bool) monitor.Event {
	h.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		select {
		case ev := <-h.events:
			h.seen = append(h.seen, ev)
			if pred(ev) {
				return ev
			}
		case <-deadline.C:
			h.t.Fatalf("timed out waiting for %s; got %s", what, describe(h.seen))
			return monitor.Event{}
		}
	}
}

// waitEvent waits for an event with op for the vassal name.
func (h *harness) waitEvent(op monitor.Op, name string) monitor.Event {
	h.t.Helper()
	return h.waitFor(op.String()+" "+name, func(ev monitor.Event) bool {
		return ev.Op == op && ev.Key.Name == name
	})
}

// waitSet waits until an event for each (op, name) pair has been received
// since mark (an index into seen, from h.mark), in any order.
func (h *harness) waitSet(mark int, want ...any) {
	h.t.Helper()
	type key struct {
		op   monitor.Op
		name string
	}
	missing := map[key]bool{}
	for i := 0; i+1 < len(want); i += 2 {
		missing[key{want[i].(monitor.Op), want[i+1].(string)}] = true
	}
	for _, ev := range h.seen[mark:] {
		delete(missing, key{ev.Op, ev.Key.Name})
	}
	for len(missing) > 0 {
		h.waitFor(fmt.Sprint(missing), func(ev monitor.Event) bool {
			k := key{ev.Op, ev.Key.Name}
			if missing[k] {
				delete(missing, k)
				return true
			}
			return false
		})
	}
}

// mark returns the index of the next event to be received.
func (h *harness) mark() int { return len(h.seen) }

// drain collects the events already delivered, without waiting.
func (h *harness) drain() []monitor.Event {
	var got []monitor.Event
	for {
		select {
		case ev := <-h.events:
			h.seen = append(h.seen, ev)
			got = append(got, ev)
		default:
			return got
		}
	}
}

// sync makes sure the monitor has handled every change made before the
// call: it creates and removes a marker config prefix+"zz-barrier-N.ini"
// in dir (whose vassal name the monitor spells as nameDir + marker) and
// waits for both events. The
// removal is handled in a later batch than the creation, and each batch is
// sent in full before the next starts, so whatever earlier changes caused
// has been received. It returns the events received meanwhile, markers
// excluded.
func (h *harness) sync(dir, nameDir, prefix string) []monitor.Event {
	h.t.Helper()
	h.barrier++
	base := fmt.Sprintf("%szz-barrier-%d.ini", prefix, h.barrier)
	path := filepath.Join(dir, base)
	name := nameDir + base
	start := len(h.seen)
	writeFile(h.t, path, "[uwsgi]\n")
	h.waitEvent(monitor.Touch, name)
	if err := os.Remove(path); err != nil {
		h.t.Fatal(err)
	}
	h.waitEvent(monitor.Destroy, name)
	var got []monitor.Event
	for _, ev := range h.seen[start:] {
		if !strings.Contains(ev.Key.Name, "zz-barrier-") {
			got = append(got, ev)
		}
	}
	return got
}

// expectNone fails if any of evs is an event at all.
func (h *harness) expectNone(evs []monitor.Event, why string) {
	h.t.Helper()
	if len(evs) > 0 {
		h.t.Errorf("%s: unexpected events %s", why, describe(evs))
	}
}

func describe(evs []monitor.Event) string {
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

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// setMtime sets a file's mtime to an exact nanosecond time.
func setMtime(t *testing.T, path string, mt time.Time) {
	t.Helper()
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// logRecorder is a slog.Handler that keeps the messages and signals each.
type logRecorder struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func newLogRecorder() *logRecorder {
	return &logRecorder{changed: make(chan struct{}, 1)}
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &attrHandler{r: r, attrs: attrs}
}
func (r *logRecorder) WithGroup(string) slog.Handler { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	return r.record(nil, rec)
}

func (r *logRecorder) record(pre []slog.Attr, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	for _, a := range pre {
		b.WriteString(" " + a.String())
	}
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

// count returns how many lines so far contain substr.
func (r *logRecorder) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// all returns every line so far.
func (r *logRecorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// waitCount waits until at least n lines contain substr.
func (r *logRecorder) waitCount(t *testing.T, substr string, n int) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for r.count(substr) < n {
		select {
		case <-r.changed:
		case <-deadline.C:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out waiting for log %q; logs:\n%s", substr, strings.Join(r.lines, "\n"))
		}
	}
}

type attrHandler struct {
	r     *logRecorder
	attrs []slog.Attr
}

func (h *attrHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *attrHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &attrHandler{r: h.r, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}
func (h *attrHandler) WithGroup(string) slog.Handler { return h }
func (h *attrHandler) Handle(_ context.Context, rec slog.Record) error {
	return h.r.record(h.attrs, rec)
}

// names lists the vassal names of evs with op.
func names(evs []monitor.Event, op monitor.Op) map[string]monitor.Event {
	m := map[string]monitor.Event{}
	for _, ev := range evs {
		if ev.Op == op {
			m[ev.Key.Name] = ev
		}
	}
	return m
}

// dirSync is sync for a dir:// monitor on dir.
func (h *harness) dirSync(dir string) []monitor.Event {
	h.t.Helper()
	return h.sync(dir, "", "")
}

// newDir runs a dir:// monitor on dir.
func newDir(t *testing.T, dir string, opts monitor.Options) *harness {
	t.Helper()
	return newHarness(t, files.NewDir, dir, opts)
}
