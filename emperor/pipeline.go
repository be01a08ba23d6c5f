package emperor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/protocol"
	"github.com/emperor-dev/emperor/tyrant"
)

// A vassal's way from "should run" to a process, top to bottom. No step
// makes the loop wait: each gate parks the vassal in a sub-state of
// Waiting, and a timer or a freed slot moves it on.
//
//  1. wait       Waiting/Penalty while its respawn penalty runs (a timer),
//                or straight on.
//  2. spawn      the throttle gate: once the first scan is done,
//                Waiting/Throttle until the throttle opens a wave
//                (throttle.go has the rule).
//  3. slotGate   admission control: Waiting/Slot until one of
//                emperor-max-starting start slots is free.
//  4. launch     refusals (Disabled/Refused), isolation (isolation.go), the
//                Spec: Spawning, queued for the spawner thread
//                (spawn_linux.go).
//  5. spawnDone  the spawner's answer: its fds watched (fds.go), Running;
//                a failed spawn goes back to step 1.
//
// A start slot is held from step 4 until the vassal first speaks the
// protocol (byte 1, 5 or 17), exits, or StartWindow passes (a program
// that never speaks it). This replaces uWSGI's global throttle, which sleeps
// the whole Emperor for a second or more on every spawn (bugs B7, B42); the
// first scan goes through the slots too, so 500 vassals boot as fast as the
// machine can start them, MaxStarting at a time.

// wait puts a vassal that should run into Waiting, with its penalty.
func (e *Emperor) wait(v *vassal, reason string) {
	d := time.Duration(0)
	if !e.opts.NoBlacklist {
		d = respawnDelay(int(v.unloyalDeaths), e.opts.Throttle, e.opts.MaxThrottle, false)
	}
	if d == 0 {
		e.transition(v, Waiting, None, reason)
		e.spawn(v)
		return
	}
	e.transition(v, Waiting, Penalty, fmt.Sprintf("%s; respawn in %s", reason, d))
	v.timer = e.after(d, vassalTimer{key: v.ev.Key, gen: v.gen, kind: penaltyTimer})
}

// spawn moves a Waiting vassal through the gates: the throttle once the
// first scan is done, then a start slot. A vassal already in a queue keeps
// its place; one waiting out a penalty has it lifted.
func (e *Emperor) spawn(v *vassal) {
	if v.state != Waiting {
		return
	}
	switch v.sub {
	case Throttle, Slot, Fds:
		return
	case Penalty:
		if v.timer != nil {
			v.timer.Stop()
			v.timer = nil
		}
		v.sub = None
	}
	if e.throttling() {
		e.throttleGate(v)
		return
	}
	e.slotGate(v)
}

// ticket is a place in a queue, valid while the vassal stays in the
// Waiting sub-state it was queued in.
type ticket struct {
	v   *vassal
	gen uint64
}

// valid reports whether the ticket's vassal still waits in sub.
func (e *Emperor) valid(t ticket, sub Sub) bool {
	return e.vassals[t.v.ev.Key] == t.v && t.v.gen == t.gen && t.v.state == Waiting && t.v.sub == sub
}

// throttling reports whether spawns go through the throttle: after the
// first scan, unless ThrottleBurst is negative.
func (e *Emperor) throttling() bool {
	return e.readySent && e.opts.ThrottleBurst > 0
}

// throttleGate queues v behind the throttle and lets through what is due.
func (e *Emperor) throttleGate(v *vassal) {
	now := time.Now()
	if at := e.thr.next(now, e.opts.ThrottleBurst); at.After(now) || len(e.throttled) > 0 {
		e.log.Info("spawn throttled", e.attrs(v, "level", e.thr.level, "queued", len(e.throttled)+1)...)
	}
	v.sub = Throttle
	e.throttled = append(e.throttled, ticket{v: v, gen: v.gen})
	e.pumpThrottle()
}

// pumpThrottle passes queued vassals to the slot gate while the throttle
// allows, then arms one timer for the next wave.
func (e *Emperor) pumpThrottle() {
	if e.ragnarok {
		e.throttled = nil
		return
	}
	for len(e.throttled) > 0 {
		t := e.throttled[0]
		if !e.valid(t, Throttle) {
			e.throttled = dropFirst(e.throttled)
			continue // removed, spawned or moved on meanwhile
		}
		now := time.Now()
		if at := e.thr.next(now, e.opts.ThrottleBurst); at.After(now) {
			if e.thrTimer == nil || !e.thrAt.Equal(at) {
				if e.thrTimer != nil {
					e.thrTimer.Stop()
				}
				e.thrAt = at
				e.thrTimer = e.afterTick(at.Sub(now), throttleTick)
			}
			return
		}
		e.thr = e.thr.take(now, e.opts.ThrottleBurst)
		e.throttled = dropFirst(e.throttled)
		t.v.sub = None
		e.slotGate(t.v)
	}
}

// spawnFailed raises the throttle for a spawn that failed (see throttle.go).
func (e *Emperor) spawnFailed() {
	if e.throttling() {
		e.thr = e.thr.fail(time.Now(), e.opts.Throttle, e.opts.MaxThrottle)
	}
}

// throttleFired opens the wave the throttle timer was armed for.
func (e *Emperor) throttleFired() {
	e.thrTimer = nil
	e.pumpThrottle()
}

// slotGate launches v if a start slot is free, or queues it for one.
func (e *Emperor) slotGate(v *vassal) {
	if e.opts.MaxStarting > 0 && e.starting >= e.opts.MaxStarting {
		v.sub = Slot
		e.admission = append(e.admission, ticket{v: v, gen: v.gen})
		return
	}
	e.launch(v)
}

// dropFirst removes a queue's head. An emptied queue lets its array go:
// the empty slice left by q[1:] would keep the whole array of a queue
// that once held 10,000 spawns.
func dropFirst[T any](q []T) []T {
	var zero T
	q[0] = zero
	if len(q) == 1 {
		return nil
	}
	return q[1:]
}

// admit launches queued vassals while start slots are free.
func (e *Emperor) admit() {
	if e.ragnarok {
		e.admission = nil // nothing starts any more
		return
	}
	for len(e.admission) > 0 && (e.opts.MaxStarting <= 0 || e.starting < e.opts.MaxStarting) {
		t := e.admission[0]
		e.admission = dropFirst(e.admission)
		if !e.valid(t, Slot) {
			continue // removed or moved on meanwhile
		}
		t.v.sub = None
		e.launch(t.v)
	}
}

// startSlot is a vassal's hold on one of the start slots.
type startSlot struct {
	held  bool
	seq   uint64      // tags the start window's timer
	timer *time.Timer // ends the start window
}

// beginStarting takes a start slot for v.
func (e *Emperor) beginStarting(v *vassal) {
	if v.slot.held {
		return
	}
	v.slot.held = true
	e.starting++
	v.slot.seq++
	v.slot.timer = e.after(e.opts.StartWindow, vassalTimer{key: v.ev.Key, kind: startWindowTimer, seq: v.slot.seq})
}

// doneStarting gives v's start slot back and admits the next in line.
func (e *Emperor) doneStarting(v *vassal) {
	if !v.slot.held {
		return
	}
	v.slot.held = false
	e.starting--
	if v.slot.timer != nil {
		v.slot.timer.Stop()
		v.slot.timer = nil
	}
	// The loop admits the next in line once it has finished with the
	// current event, so whatever freed the slot is logged first.
	e.admitDue = true
}

// launch builds v's Spec and queues it for the spawner thread, or refuses
// it for good (until its config changes).
func (e *Emperor) launch(v *vassal) {
	dir := e.cwd
	if v.ev.Path != "" {
		dir = filepath.Dir(v.ev.Path)
	}
	// In tyrant mode a config file is opened once by the spawner, which
	// passes its text (tyrantfile.go).
	openOnce := e.opts.Tyrant && v.ev.Config == nil && v.ev.Path != ""
	spec := Spec{
		Key:        v.ev.Key,
		Argv:       vassalArgv(&e.opts, &v.ev, v.ev.Config != nil || openOnce),
		Dir:        dir,
		Config:     v.ev.Config,
		Namespaces: e.opts.Namespaces,
		HostUID:    os.Getuid(),
		HostGID:    os.Getgid(),
		Binaries:   e.opts.binaries(),
		NameAt:     nameIndex(&e.opts),
	}
	if e.opts.MagicExec && v.ev.Config == nil && v.ev.Path != "" {
		spec.MagicExec, spec.ExecPath = true, v.ev.Path // the spawner decides (magicexec.go)
	}
	v.owner = v.ev.Owner
	if n := len(v.ev.Config); n > e.configLimit() {
		v.version = v.ev.Version // refused as it is: only a change retries
		e.transition(v, Disabled, Refused, fmt.Sprintf("inline config is %d bytes, above the %d a uWSGI vassal reads from its config fd: "+
			"move parts into files it includes, or run our vassal (binary-path), which reads larger frames", n, e.configLimit()))
		return
	}
	switch {
	case openOnce:
		spec.OpenOnce, spec.ConfigPath = true, v.ev.Path
		spec.NoFollow, spec.ConfigLimit = e.opts.TyrantNoFollow, e.configLimit()
	case e.opts.Tyrant:
		cred, err := tyrant.Credential(v.ev.Key.Name, v.ev.Owner)
		if err != nil {
			v.version = v.ev.Version // refused as it is: only a change retries
			e.transition(v, Disabled, Refused, err.Error())
			return
		}
		spec.runAs(cred)
	}
	e.isolate(&spec, v) // caps, hostname, groups, cgroup, hooks (isolation.go)
	e.transition(v, Spawning, None, "spawn")
	e.beginStarting(v)
	v.spawnVersion = v.ev.Version
	e.pending = append(e.pending, spawnRequest{spec: spec, gen: v.gen})
}

// configLimit is the largest config text a vassal is sent.
func (e *Emperor) configLimit() int {
	if e.opts.ExtendedFrames {
		return protocol.MaxExtendedFrame
	}
	return protocol.MaxFrame
}

// spawnDone handles the spawner's answer.
func (e *Emperor) spawnDone(res spawnResult) {
	e.quietSoon()
	if res.proc != nil && res.proc.handed > 0 {
		if err := e.takeFds(res.proc); err != nil {
			// No channel: the process cannot be governed. It is killed and
			// reaped, and the spawn failed (for lack of an fd, it waits for
			// one like any other).
			killTree(res.proc)
			e.track(nil, res.proc)
			res.proc, res.err = nil, err
		}
	}
	v := e.vassals[res.spec.Key]
	if v == nil || v.gen != res.gen || v.state != Spawning {
		// Cannot happen: Spawning is only left through here. Never leak.
		e.log.Error("spawn result for a vassal not spawning (bug)", "vassal", res.spec.Key.Name)
		if res.proc != nil {
			killTree(res.proc)
			e.closeProcess(res.proc)
			e.track(nil, res.proc) // reaped, then dropped (reaper_linux.go)
		}
		return
	}
	var refused *tyrant.Error
	if errors.As(res.err, &refused) {
		e.doneStarting(v)
		switch {
		case !v.want || e.ragnarok:
			// Removed while the spawner found it gone: nothing to hold.
			e.remove(v, "refused, and its config is gone: "+refused.Error())
		case v.ev.Version != v.spawnVersion:
			e.wait(v, "refused, but its config changed meanwhile: "+refused.Error())
		default:
			v.version = v.spawnVersion // refused as it is: only a change retries
			e.transition(v, Disabled, Refused, refused.Error())
		}
		return
	}
	if e.fdShortage(v, res.err) { // no fd free: waits for one, unpenalised (fdbudget.go)
		return
	}
	if res.err != nil {
		e.doneStarting(v)
		v.lastExit = "spawn failed: " + res.err.Error()
		e.log.Error("spawn failed", e.attrs(v, "err", res.err, "argv", res.spec.Argv)...)
		if !v.want || e.ragnarok {
			e.remove(v, "spawn failed")
			return
		}
		v.diedUnloyal(v.unloyalDeaths+1, stampNow())
		e.spawnFailed()
		e.counters.Restarts["spawn_failed"]++
		e.wait(v, "spawn failed: "+res.err.Error())
		return
	}
	p := res.proc
	p.config = res.spec.Config
	if res.spec.Owner != nil {
		v.owner = res.spec.Owner // who the opened file says it runs as
	}
	v.proc = p
	e.track(v, p) // its exit comes from the SIGCHLD reaper (reaper_linux.go)
	e.live++
	e.counters.Spawns++
	v.version = v.spawnVersion
	v.said.reset()
	if err := e.watch(v, p); err != nil {
		// Nobody would see its bytes or its exit: a failed spawn.
		e.transition(v, Cursed, None, "cannot watch its fds: "+err.Error())
		e.unwatched(v, p, err)
		return
	}
	if res.spec.Config != nil {
		e.pushConfig(v)
	}
	reason := fmt.Sprintf("spawned pid %d", p.pid)
	if e.opts.wrapped() {
		reason += ", running " + res.spec.Ran.String() // which wrapper ran (wrapper.go)
	}
	if n := res.spec.NameAt; res.spec.MagicExec && n < len(res.spec.Argv) && strings.HasPrefix(res.spec.Argv[n], "exec://") {
		reason += ", its config from " + res.spec.Argv[n] + " (emperor-magic-exec)"
	}
	e.transition(v, Running, None, reason)
	e.startHooks(v, p) // exec-as-emperor, off the loop (hooks.go)
	e.fdSpawned()      // vassals waiting for an fd may try again (fdbudget.go)
	switch {
	case e.ragnarok:
		e.stop(v, Restart, "Ragnarok")
	case !v.want:
		e.stop(v, Restart, "config removed while spawning")
	case v.ev.Version != v.version:
		e.reload(v, "config changed while spawning")
	}
}
