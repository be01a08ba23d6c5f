package emperor

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The fd budget. Each vassal costs the Emperor one fd, its control socket
// (two with an inline config: the config channel stays open for the
// vassal's config requests after a reload); its exit comes from the SIGCHLD
// reaper (reaper_linux.go), not from a pidfd. So RLIMIT_NOFILE, less the
// Emperor's own fds and a reserve, is how many vassals it can hold.
//
// When the fds run out, a spawn fails with EMFILE or ENFILE (at the
// socketpair, the exec status pipe, the init stage's pipes), or the spawner
// refuses it first when the control socket's fd number falls in the
// reserve: the kernel hands out the lowest free fd, so a number that high
// means fewer than fdReserve are left, which stats and command clients,
// hooks and the monitors' own reads need. Such a vassal is not at fault:
// it is not penalised and does not raise the throttle. It waits in
// Waiting/Fds, in order, and the burst of shortages is logged once, when
// it starts, and once when it ends. A waiting vassal is retried when a
// vassal's process is reaped (its fds closed), on a timer (fds freed by
// anything else), and after each spawn that succeeds in a burst (two more,
// so a freed batch is used without one probe per tick).

// fdReserve is how many fds below the limit a spawn leaves free.
const fdReserve = 32

// fdRetryEvery is how often a vassal waiting for an fd is retried when
// nothing freed one meanwhile.
const fdRetryEvery = time.Second

// fdBudget is the Emperor's fd limit, read once in Run before the first
// spawn, read-only after (the spawner thread checks it).
type fdBudget struct {
	limit   int // the soft RLIMIT_NOFILE; 0: none known, nothing checked
	hard    int
	reserve int
	fixed   int // fds open when the Emperor started governing
}

// readBudget reads the fd limit. Go raised the soft limit when the process
// started (to the hard limit less one, which tells its exec to give
// children the original soft limit back): the Emperor does not raise it
// further, or every vassal would inherit the raised limit.
func readBudget() (fdBudget, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return fdBudget{}, os.NewSyscallError("getrlimit", err)
	}
	clamp := func(x uint64) int { return int(min(x, math.MaxInt32)) }
	b := fdBudget{limit: clamp(r.Cur), hard: clamp(r.Max), reserve: fdReserve}
	n, err := openFds()
	b.fixed = n
	return b, err
}

// vassals is how many vassals of one fd each the budget allows: check
// passes while both ends of a new control socketpair fall below the
// reserve.
func (b *fdBudget) vassals() int {
	return max(0, b.limit-b.fixed-b.reserve-1)
}

// check refuses a new fd numbered in the reserve: fewer than reserve fds
// are left below the limit.
func (b *fdBudget) check(fd int) error {
	if b == nil || b.limit == 0 || fd < b.limit-b.reserve {
		return nil
	}
	return fmt.Errorf("fd %d: the last %d of the %d RLIMIT_NOFILE allows are kept for the Emperor's own work: %w",
		fd, b.reserve, b.limit, unix.EMFILE)
}

// fdShort reports whether a spawn failed for lack of fds.
func fdShort(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

// openFds counts the fds this process has open.
func openFds() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(1024)
		n += len(names)
		if err != nil || len(names) == 0 {
			return n - 1, nil // less the directory being read
		}
	}
}

// fdWaits is the loop's side of the budget: the vassals waiting for an fd
// and the burst they belong to.
type fdWaits struct {
	queue     []ticket    // Waiting/Fds, oldest first
	timer     *time.Timer // the next retry, while the queue is not empty
	burst     bool        // a shortage was logged and has not ended
	since     time.Time   // when the burst began
	inBurst   uint64      // shortages in the current burst
	exhausted uint64      // spawns that failed for lack of fds, ever
	bursts    uint64
}

// FdStats is the Emperor's fd budget in Stats (ours).
type FdStats struct {
	Limit int `json:"limit"` // the soft RLIMIT_NOFILE
	// InUse counts the fds the Emperor has open (read off the loop).
	InUse   int `json:"in_use"`
	Reserve int `json:"reserve"` // fds a spawn leaves free below the limit
	// Vassals is how many vassals of one fd each the limit allowed at start.
	Vassals int `json:"vassals_allowed"`
	// Waiting counts the vassals waiting for an fd to free up.
	Waiting int `json:"waiting"`
	// Exhausted counts the spawns that failed for lack of fds; Bursts
	// the runs of such failures (each logged once).
	Exhausted uint64 `json:"exhausted"`
	Bursts    uint64 `json:"bursts"`
}

// logBudget says at start how many vassals the fd limit allows.
func (e *Emperor) logBudget() {
	b := &e.budget
	e.log.Info("fd budget: one fd per vassal (two with an inline config)",
		"limit", b.limit, "hard_limit", b.hard, "in_use", b.fixed, "reserve", b.reserve, "vassals", b.vassals())
	if b.vassals() < 100 {
		e.log.Warn("the fd limit allows fewer than 100 vassals: raise RLIMIT_NOFILE (LimitNOFILE= in a systemd unit)",
			"limit", b.limit, "vassals", b.vassals())
	}
}

// fdShortage handles a spawn that failed for lack of fds: the vassal waits
// for one, unpenalised. It reports false for any other failure.
func (e *Emperor) fdShortage(v *vassal, err error) bool {
	if !fdShort(err) {
		return false
	}
	e.doneStarting(v)
	f := &e.fdw
	f.exhausted++
	f.inBurst++
	if !v.want || e.ragnarok {
		e.remove(v, "no fd to spawn it, and its config is gone")
		return true
	}
	if !f.burst {
		f.burst, f.since = true, time.Now()
		f.bursts++
		e.log.Warn("out of file descriptors: vassals wait for one to free up (logged once until they are all spawned)",
			e.attrs(v, "limit", e.budget.limit, "running", e.live, "err", err)...)
	}
	e.transition(v, Waiting, Fds, "no file descriptor free: waits for one")
	f.queue = append(f.queue, ticket{v: v, gen: v.gen})
	e.armFdRetry()
	return true
}

// armFdRetry arms the retry timer for the burst under way.
func (e *Emperor) armFdRetry() {
	if e.fdw.timer == nil && e.fdw.burst {
		e.fdw.timer = e.afterTick(fdRetryEvery, fdTick)
	}
}

// fdRetry is the retry timer's fire: one waiting vassal tries again. A
// fire that finds none waiting ends the burst: the last ones left the
// queue at least a tick ago, time enough for a retry that failed to come
// back to it.
func (e *Emperor) fdRetry() {
	f := &e.fdw
	f.timer = nil
	if e.fdWaiting() == 0 || e.ragnarok {
		if !e.ragnarok {
			e.log.Info("file descriptors free again: every vassal that waited for one was spawned or removed",
				"failed_spawns", f.inBurst, "took", time.Since(f.since).Round(time.Millisecond))
		}
		f.burst, f.inBurst = false, 0
		return
	}
	e.releaseFdWaiters(1)
	e.armFdRetry()
}

// fdsFreed runs when a process's fds were closed: one waiting vassal
// tries again.
func (e *Emperor) fdsFreed() {
	if len(e.fdw.queue) > 0 {
		e.releaseFdWaiters(1)
	}
}

// fdSpawned runs after each spawn that succeeded: in a burst, two more
// waiting vassals try.
func (e *Emperor) fdSpawned() {
	if e.fdw.burst {
		e.releaseFdWaiters(2)
	}
}

// releaseFdWaiters sends up to n waiting vassals back through the spawn
// gates, oldest first.
func (e *Emperor) releaseFdWaiters(n int) {
	f := &e.fdw
	for n > 0 && len(f.queue) > 0 && !e.ragnarok {
		t := f.queue[0]
		f.queue[0] = ticket{}
		f.queue = f.queue[1:]
		if !e.valid(t, Fds) {
			continue // removed or moved on meanwhile
		}
		n--
		t.v.sub = None
		e.spawn(t.v)
	}
}

// fdWaiting counts the vassals waiting for an fd, dropping stale tickets.
func (e *Emperor) fdWaiting() int {
	f := &e.fdw
	q := f.queue[:0]
	for _, t := range f.queue {
		if e.valid(t, Fds) {
			q = append(q, t)
		}
	}
	clear(f.queue[len(q):])
	f.queue = q
	return len(q)
}

// fdStats is the budget's part of a Stats snapshot; InUse is filled in off
// the loop (Snapshot).
func (e *Emperor) fdStats() FdStats {
	return FdStats{Limit: e.budget.limit, Reserve: e.budget.reserve, Vassals: e.budget.vassals(),
		Waiting: e.fdWaiting(), Exhausted: e.fdw.exhausted, Bursts: e.fdw.bursts}
}
