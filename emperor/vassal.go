package emperor

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/protocol"
)

// vassal is one entry of the vassal table. Every field is owned by the
// Emperor's loop goroutine; nothing else reads or writes it.
type vassal struct {
	key   monitor.Key
	state State
	// gen is bumped by every transition; timers and spawn results carry the
	// gen they were made for, and stale ones are dropped.
	gen   uint64
	since time.Time
	// reason is why it entered its state.
	reason string

	// ev is the desired config: the latest Touch from the monitor.
	ev monitor.Event
	// want is false once the monitor destroyed the vassal.
	want bool
	// version is the config version the current process was started or
	// last reloaded with; spawnVersion the one a spawn in flight carries.
	version, spawnVersion monitor.Version
	// owner is the config owner the current process was spawned for.
	owner *monitor.Owner

	proc   *process
	ctlTok uint64
	pidTok uint64
	timer  *time.Timer

	// Protocol state of the current process.
	ready, accepting, loyal bool
	lastHeartbeat           time.Time
	killCause               string      // its metrics label
	stopCause               string      // why a stop that restarts was asked (metrics label)
	changedAt               time.Time   // config appeared or changed, not yet accepting
	hbTimer                 *time.Timer // heartbeat supervision, from the first beat
	killReason              string      // why the Emperor killed the current process
	received                map[protocol.Byte]uint64

	// Admission control (admission.go).
	queued     bool        // in the admission queue
	throttled  bool        // in the throttle queue (throttle.go)
	starting   bool        // holds a start slot
	startSeq   uint64      // tags the start window timer
	startTimer *time.Timer // ends the start window

	// held: stopped by the command socket; only its start command restarts it.
	held bool
	// voluntary is set by byte 22: the vassal is disabled after it exits.
	voluntary bool
	// unloyalDeaths counts consecutive deaths before loyalty.
	unloyalDeaths int
	reloads       int // byte 1 sent (uWSGI's "respawns")
	restarts      int // processes started after the first
	lastExit      string
	firstRun      time.Time
}

// transition moves v to a new state: the only place a state changes. It
// checks the move against the table, bumps the generation, stops the
// vassal's timer (it belonged to the old state), logs one line and notifies.
func (e *Emperor) transition(v *vassal, to State, reason string) {
	from := v.state
	if !canTransition(from, to) {
		e.log.Error("illegal vassal transition (bug)", e.attrs(v, "from", from.String(), "to", to.String(), "reason", reason)...)
		if e.opts.PanicOnIllegalTransition {
			panic(fmt.Sprintf("vassal %s: illegal transition %s → %s (%s)", v.key, from, to, reason))
		}
	}
	if v.timer != nil {
		v.timer.Stop()
		v.timer = nil
	}
	if from == Waiting {
		v.queued, v.throttled = false, false // its tickets are void
	}
	v.state = to
	v.gen++
	v.since = time.Now()
	v.reason = reason
	pid := 0
	if v.proc != nil {
		pid = v.proc.pid
	}
	e.log.Info("vassal "+to.String(), e.attrs(v, "from", from.String(), "reason", reason)...)
	if e.opts.Notify != nil {
		e.opts.Notify(Note{Key: v.key, From: from, To: to, Pid: pid, Reason: reason, Time: v.since})
	}
}

// attrs are the log attributes naming a vassal, followed by extra ones.
func (e *Emperor) attrs(v *vassal, extra ...any) []any {
	a := make([]any, 0, 8+len(extra))
	a = append(a, slog.String("vassal", v.key.Name), slog.String("monitor", e.monitorNames[v.key.Monitor]))
	if v.proc != nil {
		a = append(a, slog.Int("pid", v.proc.pid))
	}
	a = append(a, slog.Uint64("gen", v.gen))
	return append(a, extra...)
}
