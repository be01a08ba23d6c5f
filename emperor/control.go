package emperor

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/protocol"
)

// readControl reads every byte the vassal sent, until EAGAIN. Several bytes
// can arrive in one read; uWSGI handles one per wake-up.
func (e *Emperor) readControl(v *vassal, p *process, tok uint64) {
	var buf [64]byte
	for {
		n, err := unix.Read(p.ctl, buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
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
			if st, exited, err := reap(p.pidfd); err == nil && exited {
				e.exited(v, st)
				return
			}
			if v.state == Running {
				e.curse(v, reason)
			}
			return
		}
		for _, b := range buf[:n] {
			e.vassalByte(v, protocol.Byte(b))
			if v.proc != p || p.ctl < 0 {
				return // the byte ended this process's channel
			}
		}
	}
}

// vassalByte records one protocol byte from a vassal and acts on it.
func (e *Emperor) vassalByte(v *vassal, b protocol.Byte) {
	v.received[b]++
	now := time.Now()
	if b == protocol.Spawned || b == protocol.Accepting || b == protocol.Loyal {
		e.doneStarting(v)
	}
	switch b {
	case protocol.Spawned:
		v.said.ready = true
	case protocol.ConfigRequest:
		e.pushConfig(v)
	case protocol.Accepting:
		v.said.accepting = true
		if !v.changedAt.IsZero() {
			e.counters.ConfigToReady.observe(now.Sub(v.changedAt).Seconds())
			v.changedAt = time.Time{}
		}
	case protocol.Loyal:
		if !v.said.loyal {
			e.log.Info("vassal is loyal", e.attrs(v)...)
		}
		v.said.loyal = true
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
		e.opts.Notify(Note{Key: v.key, From: v.state, To: v.state, Byte: byte(b), IsByte: true, Pid: v.proc.pid, Reason: b.FromVassal(), Time: now})
	}
}

// pushConfig sends the vassal its current config text, once after spawn and
// in answer to every byte 2. It is never pushed after a reload byte (that
// made uWSGI 2.0 vassals run one version behind, bug B9).
func (e *Emperor) pushConfig(v *vassal) {
	if v.proc == nil || v.proc.cfg < 0 || v.ev.Config == nil {
		return
	}
	frame, err := protocol.AppendFrame(nil, v.ev.Config, e.opts.ExtendedFrames)
	if err == nil {
		err = protocol.WriteAll(v.proc.cfg, frame)
	}
	if err != nil {
		e.log.Error("cannot send config", e.attrs(v, "err", err)...)
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
	v.said.ready, v.said.accepting = false, false
	e.log.Info("vassal reload", e.attrs(v, "reason", reason)...)
	if e.opts.Notify != nil {
		e.opts.Notify(Note{Key: v.key, From: v.state, To: v.state, Pid: v.proc.pid, Reason: "reload: " + reason, Time: time.Now()})
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
	v.timer = e.after(e.opts.CurseTolerance, vassalTimer{key: v.key, gen: v.gen, kind: killTimer})
}

// armHeartbeat checks the vassal's heartbeat after d. The timer is not reset
// on every beat: when it fires it compares the last beat with the deadline
// and re-arms for what is left.
func (e *Emperor) armHeartbeat(v *vassal, d time.Duration) {
	v.said.hbTimer = e.after(d, vassalTimer{key: v.key, gen: v.gen, kind: heartbeatTimer, proc: v.proc})
}

// heartbeatDue kills a running vassal whose heartbeats stopped for
// emperor-required-heartbeat: uWSGI does the same (with SIGKILL); the exit
// that follows respawns it, with the reason recorded.
func (e *Emperor) heartbeatDue(v *vassal) {
	late := time.Since(v.said.lastHeartbeat)
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
