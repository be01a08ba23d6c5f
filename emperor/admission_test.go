package emperor_test

// Admission control with real vassals: the start slots, the spawn
// throttle, respawn penalties.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testkit"
	_ "github.com/emperor-dev/emperor/monitor/files"
)

// TestFloodIsAdmittedAFewAtATime drops 200 configs into a watched directory
// after the first scan: never more than the limit start at once, the
// healthy flood never waits for the throttle (it throttles failures, not
// deployments), and neither stats nor a stop wait for it.
// How fast stats answer meanwhile is BenchmarkSnapshotDuringFlood's job.
func TestFloodIsAdmittedAFewAtATime(t *testing.T) {
	const flood, limit = 200, 3
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.MaxStarting = limit
		// Small steps, so the flood rides the throttle's waves in seconds.
		o.Throttle, o.MaxThrottle = 20*time.Millisecond, 100*time.Millisecond
	}})
	h.WaitScanned() // the first scan is not throttled
	notes := h.Notes.From()
	writeFlood(t, dir, flood, func(i int) string {
		return h.vassalConfig(fmt.Sprintf("name = v%03d\nready-after = 50ms", i))
	})
	starting := map[string]bool{}
	most, running := 0, 0
	stopped := ""
	for running < flood {
		n := notes.Next(t, fmt.Sprintf("the next note, with %d of %d vassals running", running, flood))
		switch {
		case n.IsByte && (n.Byte == 1 || n.Byte == 5 || n.Byte == 17):
			delete(starting, n.Key.Name)
		case n.To == emperor.Spawning:
			starting[n.Key.Name] = true
		case n.To == emperor.Waiting || n.To == emperor.Absent || n.To == emperor.Disabled:
			delete(starting, n.Key.Name)
		}
		most = max(most, len(starting))
		if n.To != emperor.Running || n.IsByte {
			continue
		}
		running++
		// Stats answer while the flood is admitted.
		ctx, cancel := context.WithTimeout(context.Background(), testkit.Deadline)
		_, err := h.Snapshot(ctx)
		cancel()
		if err != nil {
			t.Fatalf("stats during the flood: %v", err)
		}
		if running == 20 {
			// A stop is not held up by the queues either.
			if err := os.Remove(filepath.Join(dir, n.Key.Name)); err != nil {
				t.Fatal(err)
			}
			stopped = n.Key.Name
		}
	}
	if most > limit {
		t.Errorf("%d vassals were starting at once, the limit is %d", most, limit)
	}
	if most < limit {
		t.Errorf("at most %d starting at once: the flood was not admitted as fast as allowed (%d)", most, limit)
	}
	if n := h.Log.Count("spawn throttled"); n > 0 {
		t.Errorf("%d spawns of a healthy flood of %d waited for the throttle", n, flood)
	}
	h.WaitState(stopped, emperor.Absent)
}

// writeFlood writes n configs, v000.ini and on, into dir.
func writeFlood(t testing.TB, dir string, n int, config func(i int) string) {
	t.Helper()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("v%03d.ini", i)), []byte(config(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkSnapshotDuringFlood measures a stats snapshot while a flood of
// 200 configs is admitted: the loop never waits for spawns, so stats answer
// about as fast as on an idle Emperor (the test above only asserts that
// they answer).
func BenchmarkSnapshotDuringFlood(b *testing.B) {
	dir := b.TempDir()
	e := emperortest.Start(b, emperortest.Setup{Monitors: []string{dir}, Role: roleVassal, Options: func(o *emperor.Options) {
		o.MaxStarting = 3
		o.Throttle, o.MaxThrottle = 20*time.Millisecond, 100*time.Millisecond
	}})
	e.WaitScanned()
	writeFlood(b, dir, 200, func(i int) string { return fmt.Sprintf("[uwsgi]\nname = v%03d\nready-after = 50ms\n", i) })
	for b.Loop() {
		if _, err := e.Snapshot(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestThrottledSpawnsWaitInStats: with a throttle step of an hour, one
// vassal that dies before it is loyal raises the level to the hour, and
// every later spawn waits for it, which the log and stats show; a waiting
// vassal whose config goes away leaves without ever starting.
func TestThrottledSpawnsWaitInStats(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.MaxStarting = -1
		o.ThrottleBurst = 1
		o.Throttle, o.MaxThrottle = time.Hour, time.Hour
	}})
	h.WaitScanned()
	writeFile(t, filepath.Join(dir, "crash.ini"), h.vassalConfig("name = crash\ncrash-after = 10ms"))
	h.WaitNote("the first death", emperortest.IsDeath("crash.ini"))
	writeFlood(t, dir, 6, func(i int) string { return h.vassalConfig(fmt.Sprintf("name = v%03d", i)) })
	// Each waits for a timer at least half an hour away, behind the
	// crashed vassal's respawn.
	h.WaitNote("the last of the six waiting", func(n emperor.Note) bool {
		return n.Key.Name == "v005.ini" && n.To == emperor.Waiting && !n.IsByte
	})
	line := h.Log.WaitFor(t, "spawn throttled")
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Throttled < 1 || s.ThrottleMS != time.Hour.Milliseconds() {
		t.Fatalf("stats after %q: %d throttled, level %d ms; want at least one waiting, level an hour", line, s.Throttled, s.ThrottleMS)
	}
	var waiting string
	for _, v := range s.Vassals {
		if v.State == "waiting" && v.ID != "crash.ini" {
			waiting = v.ID
		}
	}
	if waiting == "" {
		t.Fatalf("no vassal waiting in stats %+v", s.Vassals)
	}
	if err := os.Remove(filepath.Join(dir, waiting)); err != nil {
		t.Fatal(err)
	}
	h.WaitState(waiting, emperor.Absent)
	for _, n := range h.Notes.All() {
		if n.Key.Name == waiting && n.To == emperor.Spawning {
			t.Errorf("%s spawned while it waited for the throttle", waiting)
		}
	}
}

// TestCrashStormSpawnsAreBounded: ten vassals that die at once, with no
// respawn penalty of their own (emperor-no-blacklist), would respawn
// hundreds of times a second; the throttle holds them to ThrottleBurst
// spawns per level. Only an upper bound is asserted: a loaded machine
// spawns fewer, never more. The bound counts each wave as half a step
// apart, which already allows a level halved once.
func TestCrashStormSpawnsAreBounded(t *testing.T) {
	const step, burst, crashers = 300 * time.Millisecond, 2, 10
	const window = 3 * time.Second
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.MaxStarting = -1 // only the throttle gates
		o.NoBlacklist = true
		o.ThrottleBurst = burst
		o.Throttle, o.MaxThrottle = step, 4*step
	}})
	h.WaitScanned()
	notes := h.Notes.From()
	writeFlood(t, dir, crashers, func(i int) string { return h.vassalConfig(fmt.Sprintf("name = c%d\ncrash-after = 1ms", i)) })
	var first time.Time
	spawns := 0
	for {
		n := notes.Next(t, "the crash storm's next note")
		if first.IsZero() {
			if !n.IsByte && n.From == emperor.Running && n.To == emperor.Waiting {
				first = n.Time // the first failure
			}
			continue
		}
		if n.Time.Sub(first) > window {
			break
		}
		if !n.IsByte && n.To == emperor.Spawning {
			spawns++
		}
	}
	bound := burst * (int(window/(step/2)) + 1)
	t.Logf("%d spawns in the %s after the first failure (bound %d)", spawns, window, bound)
	if spawns > bound {
		t.Errorf("%d spawns in %s of a crash storm; the throttle allows at most %d", spawns, window, bound)
	}
	if spawns == 0 {
		t.Error("no vassal was respawned during the storm: the throttle shut it out")
	}
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.ThrottleMS < step.Milliseconds() {
		t.Errorf("throttle level %d ms during a crash storm, want at least one step (%d ms)", s.ThrottleMS, step.Milliseconds())
	}
}

func TestStableRunClearsThePenalty(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Throttle = time.Hour
		o.StableRun = 200 * time.Millisecond
	}})
	// It dies every 400 ms, never loyal, but each run is "stable".
	writeFile(t, filepath.Join(dir, "slow.ini"), h.vassalConfig("name = slow\ncrash-after = 400ms"))
	for i := range 3 {
		n := h.WaitNote("death", emperortest.IsDeath("slow.ini"))
		if strings.Contains(n.Reason, "respawn in") {
			t.Fatalf("death %d penalised after a stable run: %q", i+1, n.Reason)
		}
	}
}

// TestCrashLoopBacksOffUntilLoyal asserts the respawn intervals of a vassal
// that dies right after it starts: no delay after the first death, then one
// throttle step more per unloyal death, capped; once it is loyal the delay
// is gone.
func TestCrashLoopBacksOffUntilLoyal(t *testing.T) {
	const step = 150 * time.Millisecond
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Throttle = step
		o.MaxThrottle = 3 * step
	}})
	counter := filepath.Join(t.TempDir(), "starts")
	writeFile(t, filepath.Join(dir, "loop.ini"), h.vassalConfig("name = loop\ncrash-after = 30ms\nloyal-from-start = 6\nstart-counter = "+counter))
	// Deaths 1-5 are unloyal: delays 0, 1, 2, 3 (capped), 3 steps. From
	// start 6 on it announces loyalty and no longer crashes by itself: the
	// test kills it once the Emperor saw it loyal. Its deaths cost nothing.
	want := []time.Duration{0, step, 2 * step, 3 * step, 3 * step, 0, 0}
	h.WaitNote("first spawn", func(n emperor.Note) bool { return n.Key.Name == "loop.ini" && n.To == emperor.Spawning })
	for i, d := range want {
		if i >= 5 {
			loyal := h.WaitNote(fmt.Sprintf("start %d loyal", i+1), emperortest.IsByte("loop.ini", 17))
			if err := unix.Kill(loyal.Pid, unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		died := h.WaitNote(fmt.Sprintf("death %d", i+1), emperortest.IsDeath("loop.ini"))
		if d == 0 && strings.Contains(died.Reason, "respawn in") {
			t.Errorf("death %d: %q, want an immediate respawn", i+1, died.Reason)
		}
		if d > 0 && !strings.Contains(died.Reason, "respawn in "+d.String()) {
			t.Errorf("death %d: %q, want a delay of %s", i+1, died.Reason, d)
		}
		respawn := h.WaitNote(fmt.Sprintf("respawn %d", i+1), func(n emperor.Note) bool {
			return n.Key.Name == "loop.ini" && n.From == emperor.Waiting && n.To == emperor.Spawning
		})
		if got := respawn.Time.Sub(died.Time); got < d {
			t.Errorf("death %d: respawned after %s, before its %s penalty", i+1, got, d)
		}
	}
}
