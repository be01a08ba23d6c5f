package vassal

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Worker recycling (max-worker-lifetime, reload-on-rss). The loop looks at
// the newest ready generation every superviseEvery, and at the workers'
// RSS every rssEvery. A worker over its limit is replaced without dropping
// a connection: a replacement starts on the same sockets, and only once it
// is ready (a probe it answered, or its READY=1) does the old worker get
// SIGTERM (and SIGKILL after worker-reload-mercy). One worker is replaced at
// a time.
const (
	superviseEvery = time.Second
	rssEvery       = 5 * time.Second
	// lifetimeJitter spreads max-worker-lifetime by ±10% per worker so
	// that workers started together are not recycled together.
	lifetimeJitter = 0.1
)

// superviseTick: time to look for a worker to recycle.
type superviseTick struct{}

// retireMercy: a replaced worker had worker-reload-mercy to exit.
type retireMercy struct{ gen, slot, pid int }

func (superviseTick) isEvent() {}
func (retireMercy) isEvent()   {}

// jittered returns d spread by ±lifetimeJitter.
func jittered(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + time.Duration((rand.Float64()*2-1)*lifetimeJitter*float64(d))
}

// startSupervising arms the recycling ticks once some config asks for them.
func (r *runner) startSupervising(s Settings) {
	if r.supervising || (s.MaxWorkerLifetime == 0 && s.ReloadOnRSS == 0) {
		return
	}
	r.supervising = true
	r.after(superviseEvery, superviseTick{})
}

// supervise looks for one worker to recycle.
func (r *runner) supervise() {
	if r.stopping {
		return
	}
	r.after(superviseEvery, superviseTick{})
	if r.recycling {
		r.checkReplacement()
		return
	}
	if len(r.gens) == 0 {
		return
	}
	g := r.gens[len(r.gens)-1]
	if !g.ready || g.stopping {
		return
	}
	s := g.settings
	checkRSS := s.ReloadOnRSS > 0 && time.Since(r.lastRSS) >= rssEvery
	if checkRSS {
		r.lastRSS = time.Now()
	}
	for _, w := range g.workers {
		if w.cmd == nil || w.retired || w.replaces != 0 {
			continue
		}
		if w.lifetime > 0 && time.Since(w.started) >= w.lifetime {
			r.recycle(g, w, "max-worker-lifetime", "lived", time.Since(w.started).Round(time.Second))
			return
		}
		if checkRSS {
			rss, err := workerRSS(w.pid)
			if err == nil && rss > s.ReloadOnRSS {
				r.recycle(g, w, "reload-on-rss", "rss_mb", rss>>20, "limit_mb", s.ReloadOnRSS>>20)
				return
			}
		}
	}
}

// recycle starts the replacement of w.
func (r *runner) recycle(g *generation, w *worker, reason string, attrs ...any) {
	slot := 0
	for _, x := range g.workers {
		slot = max(slot, x.slot)
	}
	nw := &worker{slot: slot + 1, replaces: w.slot, respawns: w.respawns}
	g.workers = append(g.workers, nw)
	r.recycling = true
	r.log.Info("replacing worker", append([]any{"gen", g.id, "worker", w.slot, "pid", w.pid, "reason", reason, "replacement", nw.slot}, attrs...)...)
	r.startWorker(g, nw)
	if nw.cmd == nil {
		return // could not start: dropped by workerFailed
	}
	ctx, cancel := context.WithCancel(context.Background())
	nw.cancelProbe = cancel
	p := newProber(g.sockets, nw.started, r.runningPids, r.log.With("gen", g.id, "worker", nw.slot))
	gen, forSlot := g.id, nw.slot
	go p.run(ctx, func(o probeOutcome) { r.post(probed{gen: gen, forSlot: forSlot, outcome: o}) })
}

// checkReplacement kills a replacement that is not ready within
// ready-timeout (DefaultReadyTimeout when that is 0): the old worker keeps
// serving, and a later tick tries again.
func (r *runner) checkReplacement() {
	for _, g := range r.gens {
		limit := g.settings.ReadyTimeout
		if limit == 0 {
			limit = DefaultReadyTimeout
		}
		for _, w := range g.workers {
			if w.replaces != 0 && w.cmd != nil && time.Since(w.started) > limit {
				r.log.Warn("replacement worker not ready in time, killing it", "gen", g.id, "worker", w.slot, "pid", w.pid, "after", limit)
				if err := signalGroup(w.pid, syscall.SIGKILL); err != nil {
					r.log.Error("cannot kill worker", "gen", g.id, "worker", w.slot, "pid", w.pid, "err", err)
				}
			}
		}
	}
}

// replacementProbed handles a probe outcome for a replacement worker: only
// an answer from that worker counts (or an unattributed one, where the
// vassal cannot tell who answered: unix sockets).
func (r *runner) replacementProbed(ev probed) {
	g := r.generation(ev.gen)
	if g == nil || g.stopping {
		return
	}
	nw := g.worker(ev.forSlot)
	if nw == nil || nw.replaces == 0 || nw.cmd == nil || !ev.outcome.answered {
		return
	}
	if ev.outcome.acceptor != 0 && ev.outcome.acceptor != nw.pid {
		return
	}
	r.replacementReady(g, nw)
}

// replacementReady retires the worker nw replaces.
func (r *runner) replacementReady(g *generation, nw *worker) {
	if nw.cancelProbe != nil {
		nw.cancelProbe()
		nw.cancelProbe = nil
	}
	old := g.worker(nw.replaces)
	nw.replaces = 0
	r.recycling = false
	if old == nil {
		return
	}
	if old.cmd == nil {
		// The old worker died meanwhile: drop its pending respawn, the
		// replacement takes its place.
		if old.timer != nil {
			old.timer.Stop()
			old.timer = nil
		}
		old.seq++
		g.workers = removeWorker(g.workers, old)
		r.log.Info("replacement ready, the old worker was already gone", "gen", g.id, "worker", old.slot, "replacement", nw.slot)
		return
	}
	old.retired = true
	r.log.Info("replacement ready, stopping the old worker", "gen", g.id, "worker", old.slot, "pid", old.pid, "replacement", nw.slot, "replacement_pid", nw.pid)
	if err := signalGroup(old.pid, syscall.SIGTERM); err != nil {
		r.log.Error("cannot signal worker", "gen", g.id, "worker", old.slot, "pid", old.pid, "err", err)
	}
	r.after(g.settings.Mercy, retireMercy{gen: g.id, slot: old.slot, pid: old.pid})
}

// retireMercyExpired kills a replaced worker that ignored SIGTERM.
func (r *runner) retireMercyExpired(ev retireMercy) {
	g := r.generation(ev.gen)
	if g == nil {
		return
	}
	if w := g.worker(ev.slot); w != nil && w.pid == ev.pid && w.cmd != nil {
		r.log.Warn("replaced worker ignored SIGTERM for worker-reload-mercy, killing it", "gen", g.id, "worker", w.slot, "pid", w.pid)
		if err := signalGroup(w.pid, syscall.SIGKILL); err != nil {
			r.log.Error("cannot kill worker", "gen", g.id, "worker", w.slot, "pid", w.pid, "err", err)
		}
	}
}

// recycledExited handles the exit of a retired worker or of a replacement
// that never became ready: neither is respawned.
func (r *runner) recycledExited(g *generation, w *worker, how string) {
	if w.retired {
		r.log.Info("replaced worker exited", "gen", g.id, "worker", w.slot, "pid", w.pid, "how", how)
	} else {
		r.log.Warn("replacement worker died before it was ready; the old worker keeps serving", "gen", g.id, "worker", w.slot, "pid", w.pid, "how", how)
		r.dropReplacement(w)
	}
	g.workers = removeWorker(g.workers, w)
	r.maybeFinished(g)
}

// dropReplacement forgets a replacement in progress.
func (r *runner) dropReplacement(w *worker) {
	if w.cancelProbe != nil {
		w.cancelProbe()
		w.cancelProbe = nil
	}
	w.replaces = 0
	r.recycling = false
}

// removeWorker returns ws without w.
func removeWorker(ws []*worker, w *worker) []*worker {
	out := ws[:0]
	for _, x := range ws {
		if x != w {
			out = append(out, x)
		}
	}
	return out
}

// workerRSS returns the resident set size of pid in bytes, from
// /proc/PID/status (VmRSS).
func workerRSS(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}
