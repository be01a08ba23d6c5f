package emperor

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/protocol"
)

// readControl reads what the vassal sent, one bounded read per wake-up:
// the poller reports the fd again while bytes are left, after every other
// ready fd had its turn, so no vassal can hold the loop. Bytes past the
// vassal's budget (ratelimit.go) wait; a vassal over it for floodAfter is
// misbehaving and is killed.
func (e *Emperor) readControl(v *vassal, p *process, tok uint64) {
	now := stampNow()
	allow := p.in.budget.allow(now)
	if allow == 0 {
		e.rateLimited(v, p, tok, now)
		return
	}
	var buf [ctlRead]byte
	n, err := unix.Read(p.ctl, buf[:allow])
	for err == unix.EINTR {
		n, err = unix.Read(p.ctl, buf[:allow])
	}
	switch {
	case err == unix.EAGAIN:
		p.in.limitedSince = 0
		e.rearm(v, p, p.ctl, tok)
		return
	case err != nil || n == 0:
		reason := "control channel closed"
		if err != nil {
			reason = "control channel: " + err.Error()
		}
		delete(e.fds, tok)
		unix.Close(p.ctl)
		p.ctl = -1
		// Usually the process is already dead: then this is its exit,
		// not a curse.
		if _, tracked := e.children[p.pid]; tracked {
			e.checkChild(p.pid) // reaper_linux.go
		}
		if v.proc != p {
			return // that was its exit
		}
		if v.state == Running {
			e.curse(v, reason)
		}
		return
	}
	p.in.budget.spend(n)
	if n < allow {
		p.in.limitedSince = 0 // drained: not over its budget
	}
	for _, b := range buf[:n] {
		e.vassalByte(v, protocol.Byte(b))
		if v.proc != p || p.ctl < 0 {
			return // the byte ended this process's channel
		}
	}
	e.rearm(v, p, p.ctl, tok)
}

// rateLimited pauses reading a vassal that spent its byte budget: its
// channel is re-armed when the budget allows a full read again. One that
// stays over budget for floodAfter is misbehaving: it is killed, its
// exit penalised, and its channel never read again.
func (e *Emperor) rateLimited(v *vassal, p *process, tok uint64, now stamp) {
	v.rateLimited++
	if p.in.limitedSince.IsZero() {
		p.in.limitedSince = now
		e.log.Warn("vassal sends more than the protocol needs: reading it slower", e.attrs(v, "rate", ctlRate, "burst", ctlBurst)...)
	}
	if over := time.Duration(now - p.in.limitedSince); over >= floodAfter {
		e.log.Warn("vassal flooded its control channel: SIGKILL", e.attrs(v, "over_budget_for", over.Round(time.Millisecond))...)
		e.counters.Floods++
		p.killedFor, p.killCause = fmt.Sprintf("flooded its control channel for %s", over.Round(time.Second)), "flood"
		if v.state == Running {
			e.curse(v, "flooded its control channel")
		}
		if err := killTree(p); err != nil {
			e.log.Error("kill failed", e.attrs(v, "err", err)...)
		}
		return
	}
	p.in.resume = e.after(p.in.budget.until(now, ctlRead), vassalTimer{key: v.ev.Key, kind: readTimer, proc: p, tok: tok})
}

// resumeRead re-arms a rate-limited vassal's channel.
func (e *Emperor) resumeRead(v *vassal, t vassalTimer) {
	p := t.proc
	p.in.resume = nil
	if p.ctl >= 0 {
		e.rearm(v, p, p.ctl, t.tok)
	}
}

// vassalByte records one protocol byte from a vassal and acts on it.
func (e *Emperor) vassalByte(v *vassal, b protocol.Byte) {
	v.countByte(b)
	now := stampNow()
	if b == protocol.Spawned || b == protocol.Accepting || b == protocol.Loyal {
		e.doneStarting(v)
	}
	switch b {
	case protocol.Spawned:
		v.said.ready, v.said.lastReady = true, now
	case protocol.ConfigRequest:
		e.pushConfig(v)
	case protocol.Accepting:
		v.said.accepting, v.said.lastAccepting = true, now
		if !v.changedAt.IsZero() {
			e.counters.ConfigToReady.observe(time.Duration(now - v.changedAt).Seconds())
			v.changedAt = 0
		}
	case protocol.Loyal:
		if !v.said.loyal {
			e.log.Info("vassal is loyal", e.attrs(v)...)
		}
		v.said.loyal, v.said.lastLoyal = true, now
		v.unloyalDeaths = 0
	case protocol.Heartbeat:
		if v.said.lastHeartbeat.IsZero() && v.state == Running {
			// Supervision starts with the first heartbeat, as in uWSGI.
			e.armHeartbeat(v, e.opts.RequiredHeartbeat)
		}
		v.said.lastHeartbeat = now
	case protocol.Voluntary:
		if v.state == Running {
			e.stop(v, Resign, "voluntary stop (byte 22)")
		}
	case protocol.Reinforcements:
		e.log.Info("vassal asks for reinforcements", e.attrs(v)...)
	default:
		e.log.Debug("unknown byte from vassal", e.attrs(v, "byte", int(b))...)
	}
	if b != protocol.Heartbeat {
		e.log.Debug("vassal byte", e.attrs(v, "byte", int(b), "meaning", b.FromVassal())...)
	}
	if e.opts.Notify != nil {
		e.opts.Notify(Note{Key: v.ev.Key, From: v.state, To: v.state, Byte: byte(b), IsByte: true, Pid: v.proc.pid, Reason: b.FromVassal(), Time: now.Time()})
	}
}

// reload asks a running vassal to reload (byte 1).
func (e *Emperor) reload(v *vassal, reason string) {
	if v.proc == nil || v.proc.ctl < 0 {
		return
	}
	if err := protocol.WriteByte(v.proc.ctl, protocol.Reload); err != nil {
		e.curse(v, "reload: "+err.Error())
		return
	}
	v.version = v.ev.Version
	v.reloads++
	v.lastReload = stampNow()
	v.said.ready, v.said.accepting = false, false
	e.log.Info("vassal reload", e.attrs(v, "reason", reason)...)
	if e.opts.Notify != nil {
		e.opts.Notify(Note{Key: v.ev.Key, From: v.state, To: v.state, Pid: v.proc.pid, Reason: "reload: " + reason, Time: time.Now()})
	}
}

// stop asks a running vassal to stop (byte 0, or 2 when graceful) and arms
// the kill timer; then says what follows its exit (Restart, Hold, Resign).
func (e *Emperor) stop(v *vassal, then Sub, reason string) {
	b := protocol.Stop
	if e.opts.GracefulShutdown {
		b = protocol.GracefulStop
	}
	if v.proc != nil && v.proc.ctl >= 0 {
		if err := protocol.WriteByte(v.proc.ctl, b); err != nil {
			e.log.Warn("cannot send stop byte", e.attrs(v, "err", err)...)
		}
	}
	e.transition(v, Stopping, then, reason)
	e.armKill(v)
}

// curse marks a running vassal whose control channel broke.
func (e *Emperor) curse(v *vassal, reason string) {
	e.transition(v, Cursed, None, reason)
	e.armKill(v)
}

// armKill arms the curse-tolerance timer of a stopping or cursed vassal.
// During Ragnarok the mercy timer rules instead.
func (e *Emperor) armKill(v *vassal) {
	if e.ragnarok {
		return
	}
	v.timer = e.after(e.opts.CurseTolerance, vassalTimer{key: v.ev.Key, gen: v.gen, kind: killTimer})
}

// armHeartbeat checks the vassal's heartbeat after d. The timer is not reset
// on every beat: when it fires it compares the last beat with the deadline
// and re-arms for what is left.
func (e *Emperor) armHeartbeat(v *vassal, d time.Duration) {
	v.said.hbTimer = e.after(d, vassalTimer{key: v.ev.Key, gen: v.gen, kind: heartbeatTimer, proc: v.proc})
}

// heartbeatDue kills a running vassal whose heartbeats stopped for
// emperor-required-heartbeat: uWSGI does the same (with SIGKILL); the exit
// that follows respawns it, with the reason recorded.
func (e *Emperor) heartbeatDue(v *vassal) {
	late := v.said.lastHeartbeat.Since()
	if left := e.opts.RequiredHeartbeat - late; left > 0 {
		e.armHeartbeat(v, left)
		return
	}
	e.log.Warn("vassal missed its heartbeat: SIGKILL", e.attrs(v, "last", late.Round(time.Millisecond), "required", e.opts.RequiredHeartbeat)...)
	v.proc.killedFor = fmt.Sprintf("no heartbeat for %s", late.Round(time.Second))
	v.proc.killCause = "heartbeat"
	if err := killTree(v.proc); err != nil {
		e.log.Error("kill failed", e.attrs(v, "err", err)...)
	}
}
