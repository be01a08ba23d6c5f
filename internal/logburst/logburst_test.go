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
