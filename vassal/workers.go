package vassal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/procwait"
)

// worker is one slot of a generation; its process changes on respawn.
type worker struct {
	slot    int
	cmd     *exec.Cmd // nil when not running
	pid     int
	started time.Time
	backoff time.Duration // wait before its latest (re)start; 0 at first
	seq     int           // bumped for every respawn timer
	timer   *time.Timer   // pending respawn
	// From sd_notify, reset at every start: the last STATUS= and the time
	// of the last WATCHDOG=1 (zero: the worker does not use the watchdog).
	status   string
	watchdog time.Time
	respawns int // starts of this slot after the first
	// Recycling (max-worker-lifetime, reload-on-rss): lifetime is this
	// worker's jittered limit; replaces is the slot a replacement takes
	// over once ready; retired marks a replaced worker, never respawned.
	lifetime    time.Duration
	replaces    int
	retired     bool
	cancelProbe context.CancelFunc
}

// Respawn backoff of a dead worker: the first respawn waits backoffMin,
// each further one twice as long up to backoffMax, and a worker that lived
// backoffReset or longer starts again from backoffMin.
const (
	backoffMin   = 100 * time.Millisecond
	backoffMax   = 5 * time.Second
	backoffReset = 10 * time.Second
)

// nextBackoff returns how long to wait before respawning a worker that died
// after running for lived, when the wait before its last start was prev
// (0 if it was never respawned).
func nextBackoff(prev, lived time.Duration) time.Duration {
	if prev <= 0 || lived >= backoffReset {
		return backoffMin
	}
	return min(prev*2, backoffMax)
}

// maxFailuresBeforeReady is how many worker failures in a row, before the
// vassal was ever ready, make it give up.
const maxFailuresBeforeReady = 5

// startWorker starts the process of one worker slot through the spawner
// thread. A failed start is handled like a worker that died at once.
func (r *runner) startWorker(g *generation, w *worker) {
	tap, stderr, err := tapStderr(g.spec.stderr)
	if err != nil {
		r.log.Error("cannot start worker", "gen", g.id, "worker", w.slot, "err", err)
		r.workerFailed(g, w, 0, err.Error())
		return
	}
	reply := make(chan spawnReply, 1)
	r.spawns <- spawnRequest{spec: g.spec, stderr: stderr, reply: reply}
	res := <-reply
	stderr.Close() // the worker has its copy
	if res.err != nil {
		r.log.Error("cannot start worker", "gen", g.id, "worker", w.slot, "err", res.err)
		r.workerFailed(g, w, 0, "worker-exec: "+res.err.Error())
		return
	}
	if !w.started.IsZero() {
		w.respawns++
	}
	w.cmd, w.pid, w.started = res.cmd, res.cmd.Process.Pid, time.Now()
	w.status, w.watchdog = "", time.Time{}
	w.lifetime = jittered(g.settings.MaxWorkerLifetime)
	r.updateLeaders()
	r.log.Info("worker started", "gen", g.id, "worker", w.slot, "pid", w.pid)
	cmd, gen, slot, pid := res.cmd, g.id, w.slot, w.pid
	r.waiters.Add(1)
	go func() {
		defer r.waiters.Done()
		exit, err := awaitExit(pid)
		reap := make(chan struct{})
		r.post(workerExited{gen: gen, slot: slot, pid: pid, exit: exit, err: err, stderr: tap.lastLine(tapDrain), reap: reap})
		select {
		case <-reap:
		case <-r.done:
		}
		_ = cmd.Wait() // reaps; the status was read above
		r.orphans.reaped(pid)
	}()
}

// runningPids returns the snapshot of running workers' pids; safe from any
// goroutine.
func (r *runner) runningPids() []int { return *r.leaders.Load() }

// updateLeaders refreshes the snapshot runningPids returns.
func (r *runner) updateLeaders() {
	var pids []int
	for _, g := range r.gens {
		for _, w := range g.workers {
			if w.cmd != nil {
				pids = append(pids, w.pid)
			}
		}
	}
	r.leaders.Store(&pids)
}

// workerExited handles the death of a worker process.
func (r *runner) workerExited(ev workerExited) {
	defer close(ev.reap)
	g := r.generation(ev.gen)
	w := g.worker(ev.slot)
	if w == nil || w.pid != ev.pid {
		return
	}
	lived := time.Since(w.started)
	w.cmd = nil
	r.updateLeaders()
	how := ev.exit.String()
	if ev.err != nil {
		how = ev.err.Error()
	}
	if w.retired || w.replaces != 0 {
		r.recycledExited(g, w, how)
		return
	}
	if g.stopping {
		r.log.Info("worker stopped", "gen", g.id, "worker", w.slot, "pid", ev.pid, "how", how)
		r.maybeFinished(g)
		return
	}
	r.log.Warn("worker died", "gen", g.id, "worker", w.slot, "pid", ev.pid, "how", how, "lived", lived.Round(time.Millisecond))
	cause := "worker-exec: " + how
	if ev.stderr != "" {
		cause += ": " + ev.stderr
	}
	r.workerFailed(g, w, lived, cause)
}

// workerFailed counts a worker failure before the vassal was ever ready,
// gives up after maxFailuresBeforeReady in a row, and otherwise schedules
// the respawn.
func (r *runner) workerFailed(g *generation, w *worker, lived time.Duration, cause string) {
	if w.replaces != 0 {
		r.log.Warn("replacement worker failed; the old worker keeps serving", "gen", g.id, "worker", w.slot, "cause", cause)
		r.dropReplacement(w)
		g.workers = removeWorker(g.workers, w)
		return
	}
	if !r.loyal {
		r.failures++
		r.cause = cause
		if r.failures >= maxFailuresBeforeReady {
			r.stop("workers keep failing", fmt.Errorf("worker failed %d times in a row before ever being ready: %s", r.failures, cause))
			return
		}
	}
	r.scheduleRespawn(g, w, lived)
}

// scheduleRespawn starts the backoff before a dead worker runs again.
func (r *runner) scheduleRespawn(g *generation, w *worker, lived time.Duration) {
	w.backoff = nextBackoff(w.backoff, lived)
	w.seq++
	r.log.Info("respawning worker", "gen", g.id, "worker", w.slot, "in", w.backoff)
	w.timer = r.after(w.backoff, respawnDue{gen: g.id, slot: w.slot, seq: w.seq})
}

// respawnDue restarts a worker whose backoff is over.
func (r *runner) respawnDue(ev respawnDue) {
	g := r.generation(ev.gen)
	if g == nil || g.stopping {
		return
	}
	w := g.worker(ev.slot)
	if w == nil || w.seq != ev.seq || w.cmd != nil {
		return
	}
	w.timer = nil
	r.startWorker(g, w)
}

// tapDrain bounds the wait for a dead worker's last stderr bytes.
const tapDrain = 500 * time.Millisecond

// stderrTap copies a worker's stderr to the vassal's and remembers its last
// non-empty line, which names the cause when the worker fails ("sh: 1:
// exec: ./app: not found").
type stderrTap struct {
	mu   sync.Mutex
	last string
	done chan struct{} // closed at EOF: every writer has exited
}

// tapStderr returns a tap copying to w and the write end for the worker.
func tapStderr(w io.Writer) (*stderrTap, *os.File, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("stderr pipe: %w", err)
	}
	t := &stderrTap{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		defer pr.Close()
		br := bufio.NewReaderSize(pr, 4096)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				_, _ = w.Write(line)
				if s := strings.TrimSpace(string(line)); s != "" {
					t.mu.Lock()
					t.last = s
					t.mu.Unlock()
				}
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return
			}
		}
	}()
	return t, pw, nil
}

// lastLine returns the last line written, waiting up to d for the output
// of a dead worker to be read to its end.
func (t *stderrTap) lastLine(d time.Duration) string {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// awaitExit blocks until the worker has exited, without reaping it, and
// SIGKILLs whatever is left in its process group. While the worker is not
// reaped its pid (and so its group id) cannot be reused, so the kill cannot
// hit an unrelated process. The caller reaps the worker with cmd.Wait once
// the loop no longer signals it.
func awaitExit(pid int) (procwait.Status, error) { return waitExit(pid, true) }

// waitExit is awaitExit; with killGroup false the process group is left
// alone (a smart daemon's starter leaves its daemon behind, which may not
// have left the group yet).
func waitExit(pid int, killGroup bool) (procwait.Status, error) {
	st, err := procwait.Wait(unix.P_PID, pid, unix.WEXITED|unix.WNOWAIT)
	if err != nil {
		return procwait.Status{}, err
	}
	if killGroup {
		_ = unix.Kill(-pid, unix.SIGKILL) // ESRCH: the group is empty but for the zombie
	}
	return st, nil
}

// signalGroup sends sig to a worker's process group (its pgid is its pid,
// set with Setpgid). The caller guarantees the worker is not yet reaped.
func signalGroup(pid int, sig syscall.Signal) error {
	if err := unix.Kill(-pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return os.NewSyscallError("kill", err)
	}
	return nil
}
