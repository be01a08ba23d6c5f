package emperor_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
	"github.com/emperor-dev/emperor/protocol"
)

// A vassal writing to its control channel as fast as it can (here byte 30,
// which is logged) neither holds the loop nor fills the log: stats answer,
// a new config is spawned meanwhile, the flooder is killed once it has been
// over its byte budget for a while, its respawn is penalised, and the log
// holds a bounded number of its lines.
func TestFloodingVassalCannotStallTheEmperor(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Throttle = time.Hour // the flooder's penalised respawn waits: it stays down
		o.MaxThrottle = time.Hour
	}})
	h.WaitScanned()
	writeFile(t, filepath.Join(dir, "flood.ini"), h.vassalConfig("name = flood\nsend = 1 5 17\nflood = 30"))
	h.WaitState("flood.ini", emperor.Running)
	h.Log.WaitFor(t, "reading it slower", "flood.ini")

	// While it floods the loop answers stats and spawns a new config.
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Deadline)
	defer cancel()
	if _, err := h.Snapshot(ctx); err != nil {
		t.Fatalf("stats while a vassal floods: %v", err)
	}
	writeFile(t, filepath.Join(dir, "calm.ini"), h.vassalConfig("name = calm"))
	h.WaitState("calm.ini", emperor.Running)

	// Then it is killed and its respawn penalised, though it was loyal.
	died := h.WaitNote("the flooder killed", emperortest.IsDeath("flood.ini"))
	if !strings.Contains(died.Reason, "flooded its control channel") {
		t.Errorf("death reason %q does not say it flooded", died.Reason)
	}
	if !strings.Contains(died.Reason, "respawn in") {
		t.Errorf("a flooder is respawned without a penalty: %q", died.Reason)
	}
	s, err := h.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Counters.Floods != 1 || s.Counters.Restarts["flood"] != 1 {
		t.Errorf("floods %d, restarts for flood %d: want 1 and 1", s.Counters.Floods, s.Counters.Restarts["flood"])
	}
	for _, v := range s.Vassals {
		if v.ID == "flood.ini" && v.RateLimited == 0 {
			t.Errorf("stats do not count the flooder's rate limiting")
		}
	}
	// Each byte 30 is a log line; tens of thousands were sent.
	if n := h.Log.Count("flood.ini"); n > 100 {
		t.Errorf("the flooder wrote %d log lines", n)
	}
	if got := h.Notes.All(); countBytes(got, "flood.ini", 30) > 2000 {
		t.Errorf("the Emperor read %d bytes of the flood: no budget", countBytes(got, "flood.ini", 30))
	}
}

func countBytes(notes []emperor.Note, name string, b byte) int {
	n := 0
	for _, x := range notes {
		if x.IsByte && x.Byte == b && x.Key.Name == name {
			n++
		}
	}
	return n
}

// A vassal asking for its config again and again without reading the
// config channel gets whole frames only, never two interleaved, and no
// error line per request; a reload then reaches it with the newest config.
func TestConfigRequestsUnreadNeverInterleaveFrames(t *testing.T) {
	fake := monitortest.New("db")
	h := startEmperor(t, setup{monitors: []monitor.Monitor{fake}})
	pad := strings.Repeat("# padding to make frames fill the socket buffer\n", 60_000/48)
	text := func(gen int) []byte {
		return []byte(h.vassalConfig(fmt.Sprintf("name = storm\nstorm = 200\ngeneration = %d\n%s", gen, pad)))
	}
	if len(text(1)) > protocol.MaxFrame {
		t.Fatalf("config of %d bytes does not fit a uWSGI frame", len(text(1)))
	}
	fake.Events <- monitor.Event{Op: monitor.Touch, Key: monitor.Key{Name: "storm.ini"}, Config: text(1), Version: monitor.Version{Hash: "1"}}
	h.waitReport("the storm sent", func(r report) bool { return r.Event == "stormed" })
	h.WaitNote("the last request read", func(n emperor.Note) bool {
		return n.Key.Name == "storm.ini" && n.IsByte && countBytes(h.Notes.All(), "storm.ini", byte(protocol.ConfigRequest)) >= 200
	})
	fake.Events <- monitor.Event{Op: monitor.Touch, Key: monitor.Key{Name: "storm.ini"}, Config: text(2), Version: monitor.Version{Hash: "2"}}
	h.waitReport("the newest config read", func(r report) bool {
		return r.Event == "frame" && strings.Contains(r.Config, "generation = 2")
	})
	for _, r := range h.reports.All() {
		if r.Event == "bad-frame" {
			t.Fatalf("the vassal read a broken frame: %.200q", r.Config)
		}
	}
	if n := h.Log.Count("cannot send config"); n > 1 {
		t.Errorf("%d error lines for unread config requests", n)
	}
}

// A kernel that refuses to watch a new vassal's fds (epoll out of watches)
// cannot leave a process nobody watches: it is killed, counted as a
// failed spawn, and respawned.
func TestRefusedWatchKillsAndRespawns(t *testing.T) {
	dir := t.TempDir()
	once := failOnce()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Throttle = time.Hour // a second failure would show as a long wait
	}, inject: func(e *emperor.Emperor) { emperor.InjectPollFaults(e, once, nil) }})
	writeFile(t, filepath.Join(dir, "app.ini"), h.vassalConfig("name = app"))
	cursed := h.WaitState("app.ini", emperor.Cursed)
	if !strings.Contains(cursed.Reason, "cannot watch") {
		t.Errorf("reason %q does not say the fds could not be watched", cursed.Reason)
	}
	emperortest.WaitExit(t, cursed.Pid, "the unwatched vassal")
	run := h.WaitState("app.ini", emperor.Running)
	if run.Pid == cursed.Pid {
		t.Errorf("still the unwatched process %d", run.Pid)
	}
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Counters.Restarts["spawn_failed"] != 1 {
		t.Errorf("restarts %v: want one spawn_failed", s.Counters.Restarts)
	}
}

// failOnce is a fault for InjectPollFaults: true the first time it is
// asked, false after.
func failOnce() func() bool {
	var done atomic.Bool
	return func() bool { return !done.Swap(true) }
}
