package emperor

import (
	"time"

	"github.com/emperor-dev/emperor/monitor"
)

// Timers never touch state: a fire is an event posted to the loop, which
// drops it when what it was set for has moved on. Emperor-wide timers and
// per-vassal timers are two kinds of event on two channels.

// tick is an Emperor-wide timer.
type tick uint8

const (
	statusTick   tick = iota // tell systemd the vassal count (sdnotify.go)
	watchdogTick             // ping systemd's watchdog
	throttleTick             // open the throttle's next wave (pipeline.go)
	mercyTick                // Ragnarok's mercy is over: SIGKILL the rest
	buryTick                 // the SIGKILLed had their time to be reaped
	fdTick                   // retry a vassal waiting for an fd (fdbudget.go)
)

// vassalTimer is one vassal's timer. Each kind says which field makes a
// fire current: gen for the state's timers (penalty, kill), gen and proc
// for the heartbeat, seq for the start window and proc for a read, which
// outlive transitions.
type vassalTimer struct {
	key  monitor.Key
	kind vassalTimerKind
	gen  uint64
	proc *process // heartbeat, read: the process it is for
	seq  uint64   // start window: the slot's sequence number
	tok  uint64   // read: the poller token of the control channel
}

type vassalTimerKind uint8

const (
	penaltyTimer     vassalTimerKind = iota // Waiting/Penalty is over: spawn
	killTimer                               // Stopping or Cursed outlived the curse tolerance
	heartbeatTimer                          // check the last heartbeat
	startWindowTimer                        // a start slot held too long is given back
	readTimer                               // a rate-limited control channel may be read again
)

// afterTick arms an Emperor-wide timer.
func (e *Emperor) afterTick(d time.Duration, t tick) *time.Timer {
	return time.AfterFunc(d, func() {
		select {
		case e.ticks <- t:
		case <-e.done:
		}
	})
}

// after arms a vassal's timer. A fire after the loop ended is dropped.
func (e *Emperor) after(d time.Duration, t vassalTimer) *time.Timer {
	return time.AfterFunc(d, func() {
		select {
		case e.timers <- t:
		case <-e.done:
		}
	})
}

// tickFired handles an Emperor-wide timer.
func (e *Emperor) tickFired(t tick) {
	switch t {
	case statusTick:
		e.sendStatus()
	case watchdogTick:
		// Sent from the loop: when the loop stalls, the pings stop and
		// systemd acts.
		e.notify.send("WATCHDOG=1\n")
		e.afterTick(e.opts.WatchdogEvery, watchdogTick)
	case throttleTick:
		e.throttleFired()
	case mercyTick:
		e.noMercy()
	case buryTick:
		e.buried = true
	case fdTick:
		e.fdRetry()
	}
}

// timerFired handles a vassal's timer, a switch on its kind and then on the
// vassal's state; stale fires are dropped.
func (e *Emperor) timerFired(t vassalTimer) {
	v := e.vassals[t.key]
	if v == nil {
		return
	}
	if t.kind == startWindowTimer {
		if v.slot.held && v.slot.seq == t.seq {
			e.doneStarting(v)
		}
		return
	}
	if t.kind == readTimer {
		if v.proc == t.proc {
			e.resumeRead(v, t)
		}
		return
	}
	if v.gen != t.gen {
		return
	}
	switch t.kind {
	case penaltyTimer:
		if v.state == Waiting && v.sub == Penalty {
			v.timer = nil
			e.spawn(v)
		}
	case heartbeatTimer:
		if v.state == Running && v.proc == t.proc {
			e.heartbeatDue(v)
		}
	case killTimer:
		switch v.state {
		case Stopping, Cursed:
			e.log.Warn("vassal did not exit within the curse tolerance: SIGKILL", e.attrs(v, "tolerance", e.opts.CurseTolerance)...)
			if err := killTree(v.proc); err != nil {
				e.log.Error("kill failed", e.attrs(v, "err", err)...)
			}
			v.timer = e.after(e.opts.CurseTolerance, t)
		}
	}
}
