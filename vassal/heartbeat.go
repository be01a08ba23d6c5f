package vassal

import (
	"slices"
	"time"

	"github.com/emperor-dev/emperor/protocol"
)

// setHeartbeat (re)starts the heartbeat timer when the period changed.
func (r *runner) setHeartbeat(d time.Duration) {
	if d == r.heartbeat || r.em == nil {
		return
	}
	r.heartbeat = d
	r.heartbeatSeq++
	if d > 0 {
		r.after(d, heartbeatDue{seq: r.heartbeatSeq})
	}
}

// heartbeatDue sends Heartbeat (26) while a worker of the newest
// generation runs, and arms the next one.
func (r *runner) heartbeatDue(ev heartbeatDue) {
	if ev.seq != r.heartbeatSeq || r.stopping {
		return
	}
	if n := len(r.gens); n > 0 && slices.ContainsFunc(r.gens[n-1].workers, r.beating) {
		r.send(protocol.Heartbeat)
	}
	r.after(r.heartbeat, heartbeatDue{seq: r.heartbeatSeq})
}

// beating reports whether w counts as alive for the heartbeat: running,
// and, if it uses the sd_notify watchdog, pinged within 2 periods.
func (r *runner) beating(w *worker) bool {
	return w.cmd != nil && (w.watchdog.IsZero() || time.Since(w.watchdog) <= 2*r.heartbeat)
}
