package emperor

import (
	"context"
	"time"
)

// startRagnarok stops every vassal in parallel. Those still alive after
// ReloadMercy are SIGKILLed by pid, each not yet reaped and so still ours:
// only our own processes, never kill(-1) (uWSGI's bug B3).
func (e *Emperor) startRagnarok(reason string, cancelMonitors context.CancelFunc) {
	if e.ragnarok {
		e.log.Warn("Ragnarok already evoked", "reason", reason, "left", len(e.vassals))
		return
	}
	e.ragnarok = true
	if reason == (RestartSignal{}).String() {
		e.notify.send(reloadingNotice()) // hooks.go
	} else {
		e.notify.send("STOPPING=1\nSTATUS=Ragnarok: stopping every vassal\n")
	}
	cancelMonitors()
	e.log.Info("Ragnarok: stopping every vassal", "reason", reason, "vassals", len(e.vassals), "mercy", e.opts.ReloadMercy)
	// Spawns not yet on the spawner thread never happen.
	for _, req := range e.pending {
		if v := e.vassals[req.spec.Key]; v != nil && v.gen == req.gen {
			e.remove(v, "Ragnarok before its spawn")
		}
	}
	e.pending = nil
	for _, v := range e.vassals {
		switch v.state {
		case Waiting, Disabled:
			e.remove(v, "Ragnarok")
		case Running:
			e.stop(v, Restart, "Ragnarok")
		}
	}
	e.afterTick(e.opts.ReloadMercy, mercyTick)
}

// noMercy SIGKILLs every vassal still alive when the mercy expires, then
// gives them a short while to be reaped.
func (e *Emperor) noMercy() {
	e.log.Warn("Ragnarok: no mercy, SIGKILL to every vassal left", "left", len(e.vassals))
	for _, v := range e.vassals {
		if v.proc != nil && !v.proc.reaped {
			if err := killTree(v.proc); err != nil {
				e.log.Error("kill failed", e.attrs(v, "err", err)...)
			}
		}
	}
	e.afterTick(5*time.Second, buryTick)
}
