package emperor

import (
	"fmt"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/protocol"
)

// The handlers of the vassal table's events. Each is a switch on the
// vassal's state that names the states where its event matters and ignores
// the rest on purpose, so the state × event table reads straight from the
// code:
//
//	event          waiting        spawning   running       stopping          cursed   disabled
//	config touch   lift penalty   (spawned)  reload/stop   restart after it  -        respawn unless held
//	config gone    remove         (spawned)  stop          (exit removes)    (exit)   remove
//	exit           -              -          respawn       restart/disable   respawn  -
//
// Timers (timers.go), protocol bytes (control.go), commands (command.go)
// and spawn results (pipeline.go) follow the same shape.

// monitorEvent applies one monitor event to the table.
func (e *Emperor) monitorEvent(ev monitor.Event) {
	if e.ragnarok {
		return
	}
	v := e.vassals[ev.Key]
	switch {
	case ev.Op == monitor.Touch && v == nil:
		v = &vassal{ev: ev, want: true, firstRun: stampNow(), changedAt: stampNow()}
		e.vassals[ev.Key] = v
		e.transition(v, Waiting, None, "new config ("+ev.Reason+")")
		if e.suspends(v) {
			e.transition(v, Disabled, Suspended, "waits for a start command (emperor-wait-for-command)")
			return
		}
		e.spawn(v)
	case ev.Op == monitor.Touch:
		e.touched(v, ev)
	case ev.Op == monitor.Destroy && v != nil:
		e.destroyed(v, ev)
	}
}

// touched applies a new or unchanged config to a vassal in the table.
func (e *Emperor) touched(v *vassal, ev monitor.Event) {
	changed := ev.Version != v.ev.Version
	if changed {
		v.changedAt = stampNow()
	}
	v.ev = ev
	readded := !v.want
	v.want = true
	ownerChanged := e.opts.Tyrant && !sameOwner(ev.Owner, v.owner)
	switch v.state {
	case Waiting:
		if changed && v.sub == Penalty {
			v.unloyalDeaths = 0
			e.spawn(v) // an operator's edit lifts the penalty
		}
	case Running:
		switch {
		case ownerChanged:
			// Stop, then respawn as the new owner (or refuse root).
			v.stopCause = "owner_changed"
			e.stop(v, Restart, "tyrant: the config's owner changed")
		case ev.Version != v.version && v.proc.config != nil && ev.Config == nil:
			v.version = ev.Version
			e.reread(v) // tyrant mode: the file is read anew, off the loop (tyrantfile.go)
		case ev.Version != v.version:
			if ev.Config != nil {
				v.proc.config = ev.Config
			}
			e.reload(v, "config changed ("+ev.Reason+")")
		}
	case Stopping:
		if (readded || changed) && v.sub == Resign {
			v.sub = Restart // byte 22 then an edit: restart once it is down
		}
	case Disabled:
		switch v.sub {
		case Held, Suspended:
			// Stopped by command, or never started: only start brings it
			// back (uWSGI ignores a suspended vassal's config changes too).
		default:
			if ev.Version != v.version || ownerChanged {
				e.transition(v, Waiting, None, "config changed while disabled")
				e.spawn(v)
			}
		}
	case Spawning, Cursed:
		// spawnDone and exited compare the version when they are done.
	}
}

// destroyed applies the removal of a vassal's config.
func (e *Emperor) destroyed(v *vassal, ev monitor.Event) {
	v.want = false
	switch v.state {
	case Waiting, Disabled:
		e.remove(v, "config removed")
	case Running:
		e.stop(v, Restart, "config removed ("+ev.Reason+")")
	case Spawning, Stopping, Cursed:
		// They finish what they do; want decides what comes after.
	}
}

// exited handles the death of a vassal's process, whatever the order in
// which its EOF and its exit arrived (uWSGI's race, bug B4).
func (e *Emperor) exited(v *vassal, st exitStatus) {
	p := v.proc
	e.closeProcess(p, v.ctlTok)
	v.proc = nil
	e.live--
	e.doneStarting(v)
	e.endTree(v, p, &st) // kill what is left in its cgroup; note an OOM kill (isolation.go)
	e.vassalStopHook(v)  // vassals-stop-hook (hooks.go)
	if v.said.hbTimer != nil {
		v.said.hbTimer.Stop()
		v.said.hbTimer = nil
	}
	v.lastExit = st.String()
	reason := fmt.Sprintf("pid %d: %s", p.pid, st)
	restartReason := "died"
	if st.oom != "" {
		restartReason = "oom"
	}
	if p.killedFor != "" {
		reason += " (" + p.killedFor + ")"
		restartReason = p.killCause
	}
	if !v.want || e.ragnarok {
		e.remove(v, reason)
		return
	}
	switch v.state {
	case Stopping:
		switch v.sub {
		case Hold:
			e.transition(v, Disabled, Held, reason+"; stays down until started")
		case Resign:
			e.transition(v, Disabled, Voluntary, reason+"; stays down until its config changes")
		default: // Restart
			restartReason = v.stopCause
			e.wait(v, reason+"; restarting")
		}
	case Running, Cursed:
		if !st.signaled && st.code == protocol.ExileCode {
			e.transition(v, Disabled, Exiled, reason+" (exiled); stays down until its config changes")
			break
		}
		if p.started.Since() >= e.opts.StableRun {
			v.unloyalDeaths = 0 // it ran long enough: not a crash loop
		}
		switch {
		case p.killCause == "flood":
			// A flooder is penalised at once, loyal or not: its respawn
			// waits at least one throttle step.
			v.diedUnloyal(max(v.unloyalDeaths+1, 2), stampNow())
			e.spawnFailed()
		case !v.said.loyal:
			v.diedUnloyal(v.unloyalDeaths+1, stampNow())
			if p.started.Since() < e.opts.StableRun {
				e.spawnFailed() // it died before it became loyal
			}
		}
		e.wait(v, "died: "+reason)
	default:
		e.log.Error("exit of a vassal with no process (bug)", e.attrs(v, "state", v.state.String())...)
	}
	if v.state == Waiting || v.state == Spawning {
		v.restarts++
		e.counters.Restarts[restartReason]++
	}
}

func sameOwner(a, b *monitor.Owner) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}
