package emperor

import (
	"context"
	"os"
	"syscall"
	"time"
)

// signal acts on one signal. The handler only forwarded it; all work is
// here, in the loop (uWSGI works inside its handlers, bug B6).
func (e *Emperor) signal(sig os.Signal, cancelMonitors context.CancelFunc) {
	switch sig {
	case syscall.SIGHUP:
		e.log.Info("SIGHUP: reloading every vassal")
		for _, v := range e.vassals {
			if v.state == Running {
				e.reload(v, "SIGHUP")
			}
		}
	case syscall.SIGUSR1:
		e.logStatus()
	case syscall.SIGWINCH:
		e.log.Info("SIGWINCH: rescanning")
		for _, m := range e.opts.Monitors {
			m.Rescan()
		}
	case syscall.SIGURG:
		e.log.Info("SIGURG: clearing the blacklist", "cleared", e.clearPenalties(nil))
	case syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, RestartSignal{}:
		e.startRagnarok(sig.String(), cancelMonitors)
	default:
		e.log.Debug("ignored signal", "signal", sig.String())
	}
}

// logStatus logs one line per vassal (SIGUSR1).
func (e *Emperor) logStatus() {
	e.log.Info("status", "vassals", len(e.vassals))
	for _, v := range e.vassals {
		e.log.Info("vassal status", e.attrs(v, "state", v.state.String(), "since", v.since.Time().Format(time.RFC3339),
			"sub", v.sub.String(), "ready", v.said.ready, "accepting", v.said.accepting, "loyal", v.said.loyal,
			"reloads", v.reloads, "restarts", v.restarts, "last_exit", v.lastExit)...)
	}
}

// RestartSignal, sent on Options.Signals, runs Ragnarok before the Emperor
// re-executes itself (touch-reload): systemd hears RELOADING=1, not
// STOPPING=1, so it waits for the new READY=1 instead of stopping the unit.
type RestartSignal struct{}

func (RestartSignal) String() string { return "restart" }
func (RestartSignal) Signal()        {}
