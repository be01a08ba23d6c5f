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
	// state and sub say everything about where the vassal is; only
	// transition changes state, and sub moves only within a state
	// (transition, or a gate of the spawn pipeline).
	state State
	sub   Sub
	// want is false once the monitor destroyed the vassal: it is the
	// monitor's fact, not a state, and decides what follows an exit.
	want bool
	// gen is bumped by every transition; timers and spawn results carry the
	// gen they were made for, and stale ones are dropped.
	gen   uint64
	since stamp
	// reason is why it entered its state.
	reason string
	// timer belongs to the state and dies with it: the penalty of
	// Waiting/Penalty, the kill escalation of Stopping and Cursed.
	timer *time.Timer

	// ev is the desired config: the latest Touch from the monitor. Its
	// Key is the vassal's key in the table.
	ev monitor.Event
	// version is the config version the current process was started or
	// last reloaded with; spawnVersion the one a spawn in flight carries.
	version, spawnVersion monitor.Version
	// owner is the config owner the current process was spawned for.
	owner *monitor.Owner

	// proc is the current process (Running, Stopping, Cursed), with the
	// poller token of its control channel (fds.go).
	proc   *process
	ctlTok uint64
	// said is what the current process said over the protocol.
	said protoState
	// slot is its start slot, from the spawn request to its first byte
	// (pipeline.go).
	slot startSlot

	stopCause string // why a stop that restarts was asked (metrics label)
	changedAt stamp  // config appeared or changed, not yet accepting
	// received counts the protocol bytes received, one entry per byte
	// value seen (a handful: a map would cost four times as much).
	received []byteCount

	// The counters are 32 bits (a vassal record is 480 bytes, not 512).
	// rateLimited counts the times its control channel was over budget
	// (ratelimit.go).
	rateLimited uint32
	// unloyalDeaths counts consecutive deaths before loyalty.
	unloyalDeaths int32
	reloads       int32 // byte 1 sent (uWSGI's "respawns")
	restarts      int32 // processes started after the first
	lastExit      string
	firstRun      stamp

	// firstUnloyal and lastUnloyal are the times of the first and the
	// latest of the unloyal deaths counted (the blacklist's first_attempt
	// and last_attempt in the stats), set by diedUnloyal.
	firstUnloyal, lastUnloyal stamp
	// lastReload is when byte 1 was last sent (uWSGI's last_run).
	lastReload stamp
}

// protoState is what a vassal's process said over the protocol; a new
// process starts from zero.
type protoState struct {
	ready, accepting, loyal bool
	lastHeartbeat           stamp
	// When it last said ready, accepting and loyal (uWSGI's last_ready,
	// last_accepting, last_loyal); a reload keeps them.
	lastReady, lastAccepting, lastLoyal stamp
	// hbTimer supervises the heartbeat, from the first beat on.
	hbTimer *time.Timer
}

// diedUnloyal sets the count of consecutive unloyal deaths to n after one
// more such death at now: the first of a series (the count was 0) stamps
// firstUnloyal, every one stamps lastUnloyal.
func (v *vassal) diedUnloyal(n int32, now stamp) {
	if v.unloyalDeaths == 0 {
		v.firstUnloyal = now
	}
	v.unloyalDeaths, v.lastUnloyal = n, now
}

// reset forgets what the previous process said.
func (s *protoState) reset() {
	if s.hbTimer != nil {
		s.hbTimer.Stop()
	}
	*s = protoState{}
}

// transition moves v to a new state: the only place a state changes. It
// checks the move and the sub-state against the tables, bumps the
// generation, stops the state's timer, logs one line and notifies.
func (e *Emperor) transition(v *vassal, to State, sub Sub, reason string) {
	from := v.state
	if !canTransition(from, to) || !validSub(to, sub) {
		e.log.Error("illegal vassal transition (bug)", e.attrs(v, "from", from.String(), "to", to.String(), "sub", sub.String(), "reason", reason)...)
		if e.opts.PanicOnIllegalTransition {
			panic(fmt.Sprintf("vassal %s: illegal transition %s → %s/%s (%s)", v.ev.Key, from, to, sub, reason))
		}
	}
	if v.timer != nil {
		v.timer.Stop()
		v.timer = nil
	}
	v.state, v.sub = to, sub
	v.gen++
	v.since = stampNow()
	v.reason = reason
	pid := 0
	if v.proc != nil {
		pid = v.proc.pid
	}
	extra := []any{"from", from.String(), "reason", reason}
	if sub != None {
		extra = append(extra, "sub", sub.String())
	}
	msg := "vassal " + to.String()
	if to < numStates {
		msg = stateLines[to]
	}
	e.log.Info(msg, e.attrs(v, extra...)...)
	if e.opts.Notify != nil {
		e.opts.Notify(Note{Key: v.ev.Key, From: from, To: to, Pid: pid, Reason: reason, Time: v.since.Time()})
	}
}

// attrs are the log attributes naming a vassal, followed by extra ones.
func (e *Emperor) attrs(v *vassal, extra ...any) []any {
	a := make([]any, 0, 8+len(extra))
	a = append(a, slog.String("vassal", v.ev.Key.Name), slog.String("monitor", e.monitorNames[v.ev.Key.Monitor]))
	if v.proc != nil {
		a = append(a, slog.Int("pid", v.proc.pid))
	}
	a = append(a, slog.Uint64("gen", v.gen))
	return append(a, extra...)
}

// remove takes a vassal out of the table.
func (e *Emperor) remove(v *vassal, reason string) {
	e.doneStarting(v)
	e.transition(v, Absent, None, reason)
	delete(e.vassals, v.ev.Key)
}

// countByte counts one more byte b received.
func (v *vassal) countByte(b protocol.Byte) {
	for i := range v.received {
		if v.received[i].b == b {
			v.received[i].n++
			return
		}
	}
	if v.received == nil {
		v.received = make([]byteCount, 0, 3) // 1, 5 and 17, as most say
	}
	v.received = append(v.received, byteCount{b, 1})
}
