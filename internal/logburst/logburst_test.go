package logburst

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// clock is a hand-moved clock for the handler's windows.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newLogger() (*testkit.Log, *slog.Logger, *clock) {
	capture := &testkit.Log{}
	h := New(slog.NewTextHandler(capture, nil))
	c := &clock{t: time.Unix(1000, 0)}
	h.st.now = c.now
	return capture, slog.New(h), c
}

func TestFloodOfOneVassalIsOneLinePerBurst(t *testing.T) {
	capture, log, c := newLogger()
	flooder := log.With("vassal", "flood.ini")
	for range 100_000 {
		flooder.Info("vassal asks for reinforcements")
		log.Info("vassal running", "vassal", "calm.ini") // interleaved: also a kind past its burst
	}
	log.Info("vassal spawned", "vassal", "other.ini")
	if n := capture.Count("reinforcements", "flood.ini"); n != Burst {
		t.Errorf("%d lines of the flooding vassal in one window, want %d", n, Burst)
	}
	if n := capture.Count("vassal spawned", "other.ini"); n != 1 {
		t.Errorf("another vassal's line was held back: %d lines", n)
	}
	c.t = c.t.Add(Window)
	flooder.Info("vassal asks for reinforcements")
	line := capture.Lines("reinforcements", "flood.ini")
	if last := line[len(line)-1]; !strings.Contains(last, "repeated=99990") {
		t.Errorf("the first line after the burst does not count the held-back ones: %q", last)
	}
}

func TestSilentKindIsSummarised(t *testing.T) {
	capture, log, c := newLogger()
	for range Burst + 5 {
		log.Warn("cannot send config", "vassal", "a.ini")
	}
	c.t = c.t.Add(Window + time.Second)
	log.Info("something else")
	if capture.Find("cannot send config", "vassal=a.ini", "repeated=5", "burst=ended") == "" {
		t.Errorf("no summary of the held-back lines; log:\n%s", capture)
	}
}

// Many kinds within one window (10,000 vassals starting: three lines
// each) cost a walk of the kinds each time their number doubles, not one
// per line.
func TestManyKindsInOneWindowAreNotWalkedPerLine(t *testing.T) {
	capture, log, _ := newLogger()
	h := log.Handler().(*Handler)
	const vassals = 10_000
	for i := range vassals {
		for _, msg := range []string{"vassal waiting", "vassal spawning", "vassal running"} {
			log.Info(msg, "vassal", fmt.Sprintf("v%d.ini", i))
		}
	}
	if n := capture.Count("vassal running"); n != vassals {
		t.Errorf("%d lines of vassal running, want %d: each kind is new", n, vassals)
	}
	if h.st.walks > 10 {
		t.Errorf("%d walks of the kinds for %d lines in one window; want a few (one each time the kinds double)", h.st.walks, 3*vassals)
	}
}

// A log that falls silent after a burst of kinds (10,000 vassals started)
// forgets them all one Window later without waiting for another line, and
// says the held-back count of a kind that was flooding.
func TestSilentLogForgetsItsKinds(t *testing.T) {
	capture, log, c := newLogger()
	h := log.Handler().(*Handler)
	var scheduled []func()
	h.st.after = func(d time.Duration, f func()) {
		if d != Window {
			t.Errorf("sweep scheduled after %v, want %v", d, Window)
		}
		scheduled = append(scheduled, f)
	}
	for i := range 10_000 {
		log.Info("vassal running", "vassal", fmt.Sprintf("v%d.ini", i))
	}
	for range Burst + 7 {
		log.Warn("vassal floods", "vassal", "flood.ini")
	}
	if len(scheduled) != 1 {
		t.Fatalf("%d sweeps scheduled for one burst of kinds, want 1", len(scheduled))
	}
	c.t = c.t.Add(Window / 2)
	log.Info("vassal running", "vassal", "late.ini") // its window is not over at the sweep
	c.t = c.t.Add(Window / 2)
	scheduled[0]()
	if n := len(h.st.kinds); n != 1 {
		t.Errorf("%d kinds left after the sweep, want 1 (the late one)", n)
	}
	if capture.Find("vassal floods", "flood.ini", "repeated=7", "burst=ended") == "" {
		t.Errorf("the sweep did not say what the flooding kind held back; log:\n%s", capture)
	}
	if len(scheduled) != 2 {
		t.Fatalf("no sweep scheduled while a kind remains")
	}
	c.t = c.t.Add(Window)
	scheduled[1]()
	if n := len(h.st.kinds); n != 0 || h.st.sweeping || len(scheduled) != 2 {
		t.Errorf("after the last kind's window: %d kinds, sweeping %v, %d sweeps; want none left and none scheduled", n, h.st.sweeping, len(scheduled))
	}
	log.Info("vassal running", "vassal", "again.ini")
	if len(scheduled) != 3 {
		t.Errorf("a kind entering an empty table scheduled no sweep")
	}
}
