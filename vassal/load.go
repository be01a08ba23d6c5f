package vassal

import (
	"context"
	"time"

	"github.com/emperor-dev/emperor/protocol"
)

// sampleEvery is the period of the TCP table readings.
const sampleEvery = time.Second

// sosBacklogEvery rate-limits vassal-sos-backlog.
const sosBacklogEvery = 5 * time.Second

// sample reads the TCP table every sampleEvery until ctx is canceled.
func (r *runner) sample(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			entries, err := readTCPTable()
			r.post(netSample{at: now, entries: entries, err: err})
		}
	}
}

// watchLoad applies the idle and vassal-sos rules to a sample of the TCP
// table (see the package doc).
func (r *runner) watchLoad(ev netSample) {
	if r.stopping || len(r.gens) == 0 {
		return
	}
	if ev.err != nil {
		r.log.Warn("cannot read the TCP table", "err", ev.err)
		return
	}
	s := r.settings
	g := r.gens[len(r.gens)-1]
	var tcp, unixSocks int
	var queue uint64
	busy := false
	for _, l := range g.sockets {
		if l.local == nil {
			unixSocks++
			continue
		}
		tcp++
		ld := loadOf(ev.entries, l.local)
		queue = max(queue, ld.queue)
		busy = busy || ld.established > 0 || ld.queue > 0
	}
	if busy {
		r.lastActive = ev.at
	}
	if s.Idle > 0 && s.DieOnIdle && !r.idled {
		switch {
		case tcp == 0:
			if !r.warnedIdle {
				r.warnedIdle = true
				r.log.Warn("idle: no TCP socket to watch, idle detection is off", "unix_sockets", unixSocks)
			}
		case ev.at.Sub(r.lastActive) >= s.Idle:
			r.idle()
		default:
			if unixSocks > 0 && !r.warnedIdle {
				r.warnedIdle = true
				r.log.Info("idle: unix sockets are not watched, only TCP ones", "unix_sockets", unixSocks)
			}
		}
	}
	if queue == 0 {
		r.queuedSince = time.Time{}
	} else if r.queuedSince.IsZero() {
		r.queuedSince = ev.at
	}
	if s.SOS > 0 && !r.queuedSince.IsZero() && ev.at.Sub(r.queuedSince) >= s.SOS && ev.at.Sub(r.lastSOS) >= s.SOS {
		r.lastSOS = ev.at
		r.log.Warn("vassal-sos: connections wait in the accept queue, asking for reinforcements", "queue", queue, "for", ev.at.Sub(r.queuedSince).Round(time.Second))
		r.send(protocol.Reinforcements)
	}
	if s.SOSBacklog > 0 && queue >= uint64(s.SOSBacklog) && ev.at.Sub(r.lastBacklog) >= sosBacklogEvery {
		r.lastBacklog = ev.at
		r.log.Warn("vassal-sos-backlog: accept queue full, asking for reinforcements", "queue", queue, "limit", s.SOSBacklog)
		r.send(protocol.Reinforcements)
	}
}

// idle stops the workers after idle seconds without a connection: the
// vassal tells the Emperor (Voluntary, 22) and waits for its stop byte, or
// exits at once without an Emperor.
func (r *runner) idle() {
	r.idled = true
	r.log.Info("idle: no connection, stopping", "idle", r.settings.Idle)
	if r.em == nil {
		r.stop("idle", nil)
		return
	}
	r.send(protocol.Voluntary)
	for _, g := range r.gens {
		r.stopGeneration(g, "idle")
	}
}
