package main

// The measurements. Each function runs one group of rows against one
// running Emperor and returns samples; a timeout is recorded as +Inf.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	eventTimeout = 60 * time.Second       // the longest any single event may take
	pollEvery    = time.Millisecond       // polling period of the latency rows
	coldPoll     = 10 * time.Millisecond  // per-port polling period of a cold start
	loyalWait    = 20 * time.Second       // how long to wait for a loyalty log line
	settle       = 500 * time.Millisecond // quiet time between repetitions
	probers      = 64                     // concurrent port probers of a cold start
	// scanPeriod is how often uWSGI's Emperor scans its directory
	// (emperor-freq, 3 s by default); ours rescans as often.
	scanPeriod = 3 * time.Second
)

func waitLoyal(r *running, config string, offset int64) error {
	return r.waitLog(r.kind.loyal(config), offset, time.Now().Add(loyalWait))
}

// measureNewDelete runs reps of: a new config appears (new file → master
// spawned, new file → serving), the vassal becomes loyal, its config is
// deleted (delete → gone).
func measureNewDelete(r *running, firstPort, reps int, rows *rowSet) {
	timeouts := 0
	newAt, deleteAt := newPhases(reps), newPhases(reps)
	for i := range reps {
		if timeouts >= 3 {
			rows.note("newfile", "stopped after 3 timeouts")
			return
		}
		newAt.wait()
		port := firstPort + i
		name := fmt.Sprintf("new-%d.ini", port)
		off := r.logSize()
		t0, err := writeConfig(r.dir, name, port)
		if err != nil {
			rows.note("newfile", "write: %v", err)
			return
		}
		deadline := t0.Add(eventTimeout)
		var spawned, served time.Time
		master := 0
		for served.IsZero() && time.Now().Before(deadline) {
			if master == 0 {
				if master = r.masterOf(name); master != 0 {
					spawned = time.Now()
				}
			}
			if get(port, time.Second) {
				served = time.Now()
				break
			}
			time.Sleep(pollEvery)
		}
		if master == 0 {
			master = r.masterOf(name)
		}
		if served.IsZero() {
			timeouts++
			rows.add("newfile", inf)
			rows.add("spawn", ifElse(spawned.IsZero(), inf, ms(spawned.Sub(t0))))
			progress(r.kind.name, "new file %s: TIMEOUT (master %d)", name, master)
		} else {
			rows.add("newfile", ms(served.Sub(t0)))
			if !spawned.IsZero() {
				rows.add("spawn", ms(spawned.Sub(t0)))
			}
			progress(r.kind.name, "new file %s: master %d after %.1f ms, serving after %.1f ms",
				name, master, ms(spawned.Sub(t0)), ms(served.Sub(t0)))
		}
		if master == 0 {
			rows.add("delete", inf)
			os.Remove(filepath.Join(r.dir, name))
			continue
		}
		if err := waitLoyal(r, name, off); err != nil {
			rows.note("delete", "%s: %v", name, err)
		}
		_, worker, err := waitWorker(r, name, time.Now().Add(eventTimeout))
		if err != nil {
			rows.note("delete", "%s: %v", name, err)
			os.Remove(filepath.Join(r.dir, name))
			continue
		}
		mh, err1 := openPidfd(master)
		wh, err2 := openPidfd(worker)
		if err := errors.Join(err1, err2); err != nil || r.workerOf(master) != worker {
			mh.Close()
			wh.Close()
			rows.note("delete", "%s: master %d or worker %d vanished: %v", name, master, worker, err)
			os.Remove(filepath.Join(r.dir, name))
			continue
		}
		deleteAt.wait()
		if mh.exited() || wh.exited() {
			mh.Close()
			wh.Close()
			rows.note("delete", "%s: master %d or worker %d exited before the delete", name, master, worker)
			os.Remove(filepath.Join(r.dir, name))
			continue
		}
		t1 := time.Now()
		if err := os.Remove(filepath.Join(r.dir, name)); err != nil {
			rows.note("delete", "remove: %v", err)
		}
		// The worker's exit is the first sign that the master got the stop
		// order; the master's is the vassal being gone.
		var stopped, gone time.Time
		err = waitAllExit([]*pidfd{mh, wh}, t1.Add(eventTimeout), func(h *pidfd, t time.Time) {
			if h == wh {
				stopped = t
			} else {
				gone = t
			}
		})
		mh.Close()
		wh.Close()
		rows.add("stop", ifElse(stopped.IsZero(), inf, ms(stopped.Sub(t1))))
		if err != nil {
			timeouts++
			rows.add("delete", inf)
			progress(r.kind.name, "delete %s: TIMEOUT (master %d exited: %v, worker %d exited: %v)",
				name, master, !gone.IsZero(), worker, !stopped.IsZero())
		} else {
			rows.add("delete", ms(gone.Sub(t1)))
			progress(r.kind.name, "delete %s: worker %d exited after %.1f ms, master %d after %.1f ms",
				name, worker, ms(stopped.Sub(t1)), master, ms(gone.Sub(t1)))
		}
	}
}

// waitWorker waits for the current master of config and its worker.
func waitWorker(r *running, config string, deadline time.Time) (master, worker int, err error) {
	for {
		if master = r.masterOf(config); master != 0 {
			if worker = r.workerOf(master); worker != 0 {
				return master, worker, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%s: no master with a worker: %w", config, errTimeout)
		}
		time.Sleep(pollEvery)
	}
}

// measureTouch runs reps of: touch the config of a loyal, serving vassal
// and time until the old worker exits (reload received) and until a new
// worker answers (serving again).
func measureTouch(r *running, config string, port, reps int, rows *rowSet) {
	path := filepath.Join(r.dir, config)
	var lastTouch time.Time
	timeouts := 0
	touchAt := newPhases(reps)
	for i := range reps {
		if timeouts >= 3 {
			rows.note("touch", "stopped after 3 timeouts")
			return
		}
		if _, err := waitServing(port, pollEvery, time.Now().Add(eventTimeout)); err != nil {
			rows.note("touch", "rep %d: %v", i, err)
			return
		}
		time.Sleep(settle)
		// uWSGI compares mtimes in whole seconds: each touch must land in a
		// later second than the one before.
		for time.Now().Unix() <= lastTouch.Unix() {
			time.Sleep(10 * time.Millisecond)
		}
		master, worker, err := waitWorker(r, config, time.Now().Add(eventTimeout))
		if err != nil {
			rows.note("touch", "rep %d: %v", i, err)
			return
		}
		h, err := openPidfd(worker)
		if err != nil || r.workerOf(master) != worker {
			h.Close()
			rows.note("touch", "rep %d: worker %d vanished before the touch", i, worker)
			continue
		}
		touchAt.wait()
		if h.exited() {
			h.Close()
			rows.note("touch", "rep %d: worker %d exited before the touch", i, worker)
			continue
		}
		t0 := time.Now()
		if err := os.Chtimes(path, t0, t0); err != nil {
			h.Close()
			rows.note("touch", "chtimes: %v", err)
			return
		}
		lastTouch = t0
		deadline := t0.Add(eventTimeout)
		exited, err := h.waitExit(deadline)
		h.Close()
		if err != nil {
			timeouts++
			rows.add("touch", inf)
			rows.add("touchserve", inf)
			progress(r.kind.name, "touch %d: TIMEOUT: worker %d of master %d still running", i, worker, master)
			continue
		}
		rows.add("touch", ms(exited.Sub(t0)))
		// The old worker is gone: any 200 from now on comes from a new one.
		// Still, only count it once a new worker exists.
		var served time.Time
		newMaster, newWorker := 0, 0
		for time.Now().Before(deadline) {
			if newMaster = r.masterOf(config); newMaster != 0 {
				if w := r.workerOf(newMaster); w != 0 && w != worker {
					newWorker = w
					if get(port, time.Second) {
						served = time.Now()
						break
					}
				}
			}
			time.Sleep(pollEvery)
		}
		if served.IsZero() {
			timeouts++
			rows.add("touchserve", inf)
			progress(r.kind.name, "touch %d: worker %d exited after %.1f ms; serving again: TIMEOUT", i, worker, ms(exited.Sub(t0)))
			continue
		}
		rows.add("touchserve", ms(served.Sub(t0)))
		progress(r.kind.name, "touch %d: worker %d exited after %.1f ms; worker %d (master %d→%d) serving after %.1f ms",
			i, worker, ms(exited.Sub(t0)), newWorker, master, newMaster, ms(served.Sub(t0)))
	}
}

// measureKill runs reps of: SIGKILL the master of a loyal, serving vassal,
// and time until a new master's worker answers. uWSGI's orphaned worker may
// keep the listening socket (and answer) for a while after its master
// died, so a 200 counts only once a new master exists and every process of
// the old vassal has exited: then only the new vassal can have answered.
func measureKill(r *running, config string, port, reps int, rows *rowSet) {
	timeouts := 0
	killAt := newPhases(reps)
	for i := range reps {
		if timeouts >= 3 {
			rows.note("kill", "stopped after 3 timeouts")
			return
		}
		if _, err := waitServing(port, pollEvery, time.Now().Add(eventTimeout)); err != nil {
			rows.note("kill", "rep %d: %v", i, err)
			return
		}
		master, worker, err := waitWorker(r, config, time.Now().Add(eventTimeout))
		if err != nil {
			rows.note("kill", "rep %d: %v", i, err)
			return
		}
		mh, err := openPidfd(master)
		if err != nil {
			rows.note("kill", "rep %d: %v", i, err)
			continue
		}
		wh, err := openPidfd(worker)
		if err != nil {
			mh.Close()
			rows.note("kill", "rep %d: %v", i, err)
			continue
		}
		killAt.wait()
		if mh.exited() || wh.exited() {
			mh.Close()
			wh.Close()
			rows.note("kill", "rep %d: master %d or worker %d exited before the kill", i, master, worker)
			continue
		}
		off := r.logSize()
		t0 := time.Now()
		if err := mh.signal(unix.SIGKILL); err != nil {
			rows.note("kill", "rep %d: kill: %v", i, err)
		}
		deadline := t0.Add(eventTimeout)
		var served, workerGone time.Time
		newMaster := 0
		for time.Now().Before(deadline) {
			if workerGone.IsZero() && wh.exited() {
				workerGone = time.Now()
			}
			// The current master: a respawn that fails (its bind races the
			// old worker's exit) is replaced by another.
			if m := r.masterOf(config); m != master {
				newMaster = m
			}
			if newMaster != 0 && !workerGone.IsZero() && mh.exited() {
				if get(port, time.Second) {
					served = time.Now()
					break
				}
			}
			time.Sleep(pollEvery)
		}
		mh.Close()
		wh.Close()
		if served.IsZero() {
			timeouts++
			rows.add("kill", inf)
			progress(r.kind.name, "kill -9 %d: master %d: TIMEOUT (new master %d, old worker %d gone: %v)",
				i, master, newMaster, worker, !workerGone.IsZero())
			continue
		}
		rows.add("kill", ms(served.Sub(t0)))
		progress(r.kind.name, "kill -9 %d: master %d; old worker %d exited after %.1f ms; master %d serving after %.1f ms",
			i, master, worker, ms(workerGone.Sub(t0)), newMaster, ms(served.Sub(t0)))
		if err := waitLoyal(r, config, off); err != nil {
			rows.note("kill", "rep %d: %v", i, err)
		}
	}
}

// writeColdConfigs writes n vassal configs on ports first..first+n-1.
func writeColdConfigs(dir string, first, n int) error {
	for i := range n {
		port := first + i
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("v%05d.ini", port)), []byte(vassalConfig(port)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// waitAllServing probes every port concurrently (at most probers at once,
// each port until it answers) and returns the moment the last one served,
// and how many did.
func waitAllServing(first, n int, deadline time.Time) (time.Time, int, error) {
	var (
		next   atomic.Int64
		served atomic.Int64
		mu     sync.Mutex
		last   time.Time
		wg     sync.WaitGroup
	)
	for range min(probers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t, err := waitServing(first+i, coldPoll, deadline)
				if err != nil {
					continue
				}
				served.Add(1)
				mu.Lock()
				if t.After(last) {
					last = t
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if int(served.Load()) < n {
		return last, int(served.Load()), fmt.Errorf("%d of %d ports serving: %w", served.Load(), n, errTimeout)
	}
	return last, n, nil
}

// coldDeadline is how long a cold start of n vassals may take.
func coldDeadline(n int) time.Duration { return eventTimeout + time.Duration(n)*60*time.Millisecond }

// steady measures the Emperor at rest with its vassals: CPU used over the
// idle window (scaled to 30 s) and RSS at its end.
func steady(r *running, n int, idle time.Duration, rows *rowSet) {
	time.Sleep(5 * time.Second)
	if m := len(r.masters()); m != n {
		rows.note("cpu", "%d of %d vassals running at the start of the window", m, n)
	}
	ticks0, err1 := cpuTicks(r.pid)
	clk0, err2 := cpuClock(r.pid)
	t0 := time.Now()
	time.Sleep(idle)
	ticks1, err3 := cpuTicks(r.pid)
	clk1, err4 := cpuClock(r.pid)
	wall := time.Since(t0)
	rss, err5 := statusKiB(r.pid, "VmRSS")
	anon, err6 := statusKiB(r.pid, "RssAnon") // heap, stacks: RSS without the program's file pages
	if err := errors.Join(err1, err3); err != nil {
		rows.note("cpu", "%v", err)
	} else {
		v := float64(ticks1-ticks0) * 1000 / clockTicks * float64(30*time.Second) / float64(wall)
		rows.add("cpu", v)
	}
	if err := errors.Join(err2, err4); err != nil {
		rows.note("cpuns", "%v", err)
	} else {
		rows.add("cpuns", ms(clk1-clk0)*float64(30*time.Second)/float64(wall))
	}
	if err5 != nil {
		rows.note("rss", "%v", err5)
	} else {
		rows.add("rss", float64(rss)/1024)
	}
	if err6 == nil {
		rows.add("rssanon", float64(anon)/1024)
	}
	if m := len(r.masters()); m != n {
		rows.note("cpu", "%d of %d vassals running at the end of the window", m, n)
	}
	progress(r.kind.name, "steady state, %d vassals, %v: %d ticks, %v CPU clock, VmRSS %d KiB",
		n, wall.Round(time.Millisecond), ticks1-ticks0, clk1-clk0, rss)
}

// ragnarok sends the Emperor its shutdown signal and times until it and
// every vassal master exited. Workers are tracked too (they must not
// outlive the measurement) but do not count in the figure.
func ragnarok(r *running, sig syscall.Signal, rows *rowSet) {
	fam := r.family()
	defer func() {
		for _, h := range fam {
			h.Close()
		}
	}()
	masters := map[int]bool{}
	for _, p := range r.masters() {
		masters[p] = true
	}
	var counted []*pidfd
	for _, h := range fam {
		if masters[h.pid] {
			counted = append(counted, h)
		}
	}
	counted = append(counted, r.handle)
	t0 := time.Now()
	if err := r.handle.signal(sig); err != nil {
		rows.note("ragnarok", "signal: %v", err)
	}
	var last time.Time
	var emperorGone time.Time
	err := waitAllExit(counted, t0.Add(eventTimeout), func(h *pidfd, t time.Time) {
		if h == r.handle {
			emperorGone = t
		}
		if t.After(last) {
			last = t
		}
	})
	if err != nil {
		rows.add("ragnarok", inf)
		progress(r.kind.name, "Ragnarok of %d masters: %v", len(masters), err)
	} else {
		rows.add("ragnarok", ms(last.Sub(t0)))
		progress(r.kind.name, "Ragnarok of %d masters: Emperor exited after %.1f ms, last master after %.1f ms",
			len(masters), ms(emperorGone.Sub(t0)), ms(last.Sub(t0)))
	}
	// Workers (and anything else) left behind.
	var rest []*pidfd
	for _, h := range fam {
		if !h.exited() {
			rest = append(rest, h)
		}
	}
	if len(rest) > 0 {
		if err := waitAllExit(rest, time.Now().Add(eventTimeout), nil); err != nil {
			rows.note("ragnarok", "processes left %v after the Emperor and masters exited: SIGKILL", err)
			for _, h := range rest {
				if !h.exited() {
					h.signal(unix.SIGKILL)
				}
			}
			waitAllExit(rest, time.Now().Add(10*time.Second), nil)
		}
	}
	r.shutdown(syscall.SIGKILL, 10*time.Second) // reaps; nothing left to kill
}

func ifElse[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}
