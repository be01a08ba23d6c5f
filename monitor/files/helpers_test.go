package files_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/files"
	"github.com/emperor-dev/emperor/monitor/monitortest"
)

// barrier makes sure the monitor h runs has handled every change made
// before the call: it creates and removes a marker config
// prefix+"zz-barrier-N.ini" in dir (whose vassal name the monitor spells
// as nameDir + marker) and waits for both events. The removal is handled
// in a later batch than the creation, and each batch is sent in full
// before the next starts, so whatever earlier changes caused has been
// received. It returns the events received meanwhile, markers excluded.
func barrier(h *monitortest.Harness, dir, nameDir, prefix string) []monitor.Event {
	h.T.Helper()
	start := h.Mark()
	base := fmt.Sprintf("%szz-barrier-%d.ini", prefix, start) // Mark grows with every barrier
	path := filepath.Join(dir, base)
	name := nameDir + base
	if err := os.WriteFile(path, []byte("[uwsgi]\n"), 0o644); err != nil {
		h.T.Fatal(err)
	}
	h.WaitEvent(monitor.Touch, name)
	if err := os.Remove(path); err != nil {
		h.T.Fatal(err)
	}
	h.WaitEvent(monitor.Destroy, name)
	var got []monitor.Event
	for _, ev := range h.Seen[start:] {
		if !strings.Contains(ev.Key.Name, "zz-barrier-") {
			got = append(got, ev)
		}
	}
	return got
}

// dirSync is barrier for a dir:// monitor on dir.
func dirSync(h *monitortest.Harness, dir string) []monitor.Event {
	h.T.Helper()
	return barrier(h, dir, "", "")
}

// newDir runs a dir:// monitor on dir and waits for its first scan.
func newDir(t *testing.T, dir string, opts monitor.Options) *monitortest.Harness {
	t.Helper()
	return monitortest.Start(t, files.NewDir, dir, opts)
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
