package vassal

import (
	"context"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/protocol"
)

// generation is the set of workers started from one version of the config.
type generation struct {
	id          int
	settings    Settings
	sockets     []*listener
	spec        *workerSpec
	workers     []*worker
	started     time.Time
	ready       bool
	stopping    bool
	cancelProbe context.CancelFunc
	mercy       *time.Timer
}

// worker returns the worker in slot, or nil.
func (g *generation) worker(slot int) *worker {
	for _, w := range g.workers {
		if w.slot == slot {
			return w
		}
	}
	return nil
}

// startLoad reads the config again in its own goroutine: emperor:// configs
// wait on the Emperor.
func (r *runner) startLoad() {
	r.loading = true
	r.log.Info("reloading: reading the config again")
	var fetch func(string) ([]byte, error)
	if r.em != nil && r.em.cfg != nil {
		fetch = func(string) ([]byte, error) { return r.em.reloadConfig() }
	}
	go func() {
		s, err := loadSettings(r.o.Args, r.o.Env, true, r.getenv, fetch, r.log)
		r.post(configLoaded{settings: s, err: err})
	}()
}

// configLoaded starts the new generation of a reload.
func (r *runner) configLoaded(ev configLoaded) {
	r.loading = false
	if r.stopping {
		return
	}
	if r.reloadAgain {
		// A newer version was asked for meanwhile: read that one.
		r.reloadAgain = false
		r.startLoad()
		return
	}
	if ev.err != nil {
		r.log.Error("reload failed, the running workers keep serving", "err", ev.err)
		r.send(protocol.Accepting)
		return
	}
	socks, err := r.acquireSockets(ev.settings)
	if err != nil {
		r.log.Error("reload failed, the running workers keep serving", "err", err)
		r.send(protocol.Accepting)
		return
	}
	// A reload that was still starting is superseded; the oldest
	// generation keeps serving until the new one is ready.
	for i, g := range r.gens {
		if i > 0 && !g.ready {
			r.stopGeneration(g, "superseded by a newer reload")
		}
	}
	if r.brutalReload {
		// Master FIFO R: the old workers die now, without waiting for the
		// new ones.
		r.brutalReload, r.brutal = false, true
		for _, g := range r.gens {
			r.stopGeneration(g, "brutal reload")
		}
		r.brutal = false
	}
	r.settings = ev.settings
	r.startGeneration(ev.settings, socks)
}

// startGeneration starts settings.Processes workers on socks and probes
// them.
func (r *runner) startGeneration(s Settings, socks []*listener) {
	r.nextGen++
	g := &generation{id: r.nextGen, settings: s, sockets: socks, started: time.Now()}
	files := make([]*os.File, len(socks))
	for i, l := range socks {
		files[i] = l.file
	}
	g.spec = &workerSpec{
		self:    r.o.Self,
		command: s.Exec,
		dir:     s.Chdir,
		env:     workerEnv(r.o.Env, s.Env, socks, r.notifyPath()),
		files:   files,
		caps:    r.ambientCaps,
		prefix:  s.ProcnamePrefix,
		stdout:  r.o.Stdout,
		stderr:  r.o.Stderr,
	}
	r.gens = append(r.gens, g)
	r.setHeartbeat(s.Heartbeat)
	r.idled = false
	r.startSupervising(s)
	r.lastActive = time.Now()
	if !r.sampling && ((s.Idle > 0 && s.DieOnIdle) || s.SOS > 0 || s.SOSBacklog > 0) {
		r.sampling = true
		ctx, cancel := context.WithCancel(context.Background())
		r.sampleCancel = cancel
		go r.sample(ctx)
	}
	r.log.Info("starting workers", "gen", g.id, "processes", s.Processes, "exec", s.Exec)
	for i := range s.Processes {
		w := &worker{slot: i + 1}
		g.workers = append(g.workers, w)
		r.startWorker(g, w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancelProbe = cancel
	p := newProber(socks, g.started, r.runningPids, r.log.With("gen", g.id))
	go p.run(ctx, func(o probeOutcome) { r.post(probed{gen: g.id, outcome: o}) })
}

// generation returns the live generation id, or nil.
func (r *runner) generation(id int) *generation {
	for _, g := range r.gens {
		if g.id == id {
			return g
		}
	}
	return nil
}

// probed handles a readiness probe outcome.
func (r *runner) probed(ev probed) {
	if ev.forSlot != 0 {
		r.replacementProbed(ev)
		return
	}
	g := r.generation(ev.gen)
	if g == nil || g.ready || g.stopping || !ev.outcome.answered {
		return
	}
	if ev.outcome.acceptor != 0 && !slices.ContainsFunc(g.workers, func(w *worker) bool {
		return w.cmd != nil && w.pid == ev.outcome.acceptor
	}) {
		return // an older generation answered
	}
	g.ready = true
	g.cancelProbe()
	r.log.Info("workers ready", "gen", g.id, "after", time.Since(g.started).Round(time.Millisecond), "answered_by", ev.outcome.acceptor)
	for _, old := range r.gens {
		if old.id < g.id && !old.stopping {
			r.stopGeneration(old, fmt.Sprintf("replaced by generation %d", g.id))
		}
	}
	r.send(protocol.Accepting)
	if !r.loyal {
		r.loyal = true
		r.send(protocol.Loyal)
	}
}

// stopGeneration sends SIGTERM to every worker of g, and SIGKILL to those
// still running after worker-reload-mercy. Pending respawns are dropped.
func (r *runner) stopGeneration(g *generation, reason string) {
	if g.stopping {
		return
	}
	g.stopping = true
	g.cancelProbe()
	r.log.Info("stopping workers", "gen", g.id, "reason", reason, "mercy", g.settings.Mercy)
	sig := syscall.SIGTERM
	if g.settings.Mercy == 0 || r.brutal {
		sig = syscall.SIGKILL
	}
	for _, w := range g.workers {
		if w.timer != nil {
			w.timer.Stop()
			w.timer = nil
		}
		w.seq++
		if w.cmd != nil {
			if err := signalGroup(w.pid, sig); err != nil {
				r.log.Error("cannot signal worker", "gen", g.id, "worker", w.slot, "pid", w.pid, "err", err)
			}
			if r.paused {
				// A stopped process only acts on SIGTERM once continued.
				_ = signalGroup(w.pid, syscall.SIGCONT)
			}
		}
	}
	if g.settings.Mercy > 0 {
		g.mercy = r.after(g.settings.Mercy, mercyExpired{gen: g.id})
	}
	r.maybeFinished(g)
}

// mercyExpired kills the workers that ignored SIGTERM.
func (r *runner) mercyExpired(ev mercyExpired) {
	g := r.generation(ev.gen)
	if g == nil {
		return
	}
	for _, w := range g.workers {
		if w.cmd != nil {
			r.log.Warn("worker ignored SIGTERM for worker-reload-mercy, killing it", "gen", g.id, "worker", w.slot, "pid", w.pid)
			if err := signalGroup(w.pid, syscall.SIGKILL); err != nil {
				r.log.Error("cannot kill worker", "gen", g.id, "worker", w.slot, "pid", w.pid, "err", err)
			}
		}
	}
}

// maybeFinished forgets a stopping generation once none of its workers
// runs, and releases its sockets.
func (r *runner) maybeFinished(g *generation) {
	if !g.stopping || slices.ContainsFunc(g.workers, func(w *worker) bool { return w.cmd != nil }) {
		return
	}
	if g.mercy != nil {
		g.mercy.Stop()
	}
	r.gens = slices.DeleteFunc(r.gens, func(x *generation) bool { return x == g })
	r.log.Info("workers gone", "gen", g.id)
	r.releaseSockets(g.sockets)
}
