package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The Emperor itself is SIGKILLed while it governs many vassals whose
// workers left a grandchild holding the port: nothing it started may
// survive it (the guardian sweeps the vassal cgroups), and a new Emperor on
// the same directory must get every vassal serving on its port again.
func init() {
	register(Scenario{
		Order: 25, Name: "emperor-sigkill-tree",
		Fault: "the Emperor SIGKILLed with 50 vassals (short: 10), each worker leaving a grandchild (sleep) holding its port",
		Hold:  "no process it started left (time until none runs); a new Emperor on the same dir: time until all serve again",
		Run:   f1EmperorKill,
	})
}

func f1EmperorKill(ctx context.Context, env *Env) (Result, error) {
	if os.Geteuid() != 0 {
		return Result{}, fmt.Errorf("%w: needs root (per-vassal cgroups, on by default as root)", errSkip)
	}
	parents, err := f1CgroupParents()
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", errSkip, err)
	}
	n := env.Count(50, 10)
	dir := env.Mkdir("vassals")
	seen := map[int]bool{}
	var urls []string
	for i := 0; i < n; i++ {
		port, err := FreePort()
		if err != nil {
			return Result{}, err
		}
		if seen[port] {
			i--
			continue
		}
		seen[port] = true
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d/", port))
		// The worker's shell forks the sleep (which inherits the socket)
		// and execs hello, keeping the pid LISTEN_PID names. (Wrapped in
		// a second sh -c, hello would run in a forked child, miss
		// LISTEN_PID and listen on its default port instead.)
		conf := fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = sleep 100000 & exec %s\n", port, env.Hello)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("v%02d.ini", i)), []byte(conf), 0o644); err != nil {
			return Result{}, err
		}
	}
	// Whatever happens, each Emperor's vassal cgroups are emptied and
	// removed: what runs there is ours.
	var emperors []int
	env.Cleanup(func() {
		for _, pid := range emperors {
			for _, d := range f1VassalCgroups(parents, pid, "") {
				for i := 0; i < 50; i++ {
					f1KillAll(f1Procs(d))
					if err := syscall.Rmdir(d); err == nil || err == syscall.ENOENT {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
	})

	em, err := env.StartEmperor("--emperor", dir, "--binary-path", env.Vassal)
	if err != nil {
		return Result{}, err
	}
	emperors = append(emperors, em.Pid())
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	took, up := f1Serving(wctx, urls)
	cancel()
	if up < n {
		return Result{}, fmt.Errorf("only %d of %d vassals served after %s", up, n, f1Secs(took))
	}
	// Every vassal's worker has forked its sleep: 3 processes per cgroup
	// (vassal, hello, sleep).
	cgs := f1VassalCgroups(parents, em.Pid(), "")
	Poll(wctx, func() bool {
		cgs = f1VassalCgroups(parents, em.Pid(), "")
		k := 0
		for _, d := range cgs {
			if len(f1Procs(d)) >= 3 {
				k++
			}
		}
		return k >= n
	})
	set := map[int]bool{}
	inCgroups := 0
	for _, d := range cgs {
		for _, p := range f1Procs(d) {
			if !set[p] {
				set[p] = true
				inCgroups++
			}
		}
	}
	bases := map[string]bool{}
	for _, d := range cgs {
		bases[filepath.Base(d)] = true
	}
	desc := Descendants(em.Pid())
	for _, p := range desc {
		set[p] = true
	}
	var recorded []int
	for p := range set {
		recorded = append(recorded, p)
	}
	sort.Ints(recorded)
	sleeps := 0
	for _, p := range recorded {
		if f1ProcName(p) == "sleep" {
			sleeps++
		}
	}

	mark := em.LogSize()
	em.Kill()
	killed := time.Now()
	gctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	goneAfter, gone := Poll(gctx, func() bool { return len(f1Alive(recorded)) == 0 })
	cancel()
	left := f1Alive(recorded)
	var leftNames []string
	for _, p := range left {
		leftNames = append(leftNames, fmt.Sprintf("%d(%s)", p, f1ProcName(p)))
	}
	cgLeft := len(f1VassalCgroups(parents, emperors[0], "")) // directories, v2 and v1
	guardLine := ""
	if l, ok := findLine(em.Log, mark, []string{"guardian"}); ok {
		guardLine = l
	}

	// A new Emperor on the same directory.
	em2, err := env.StartEmperor("--emperor", dir, "--binary-path", env.Vassal)
	if err != nil {
		return Result{}, err
	}
	emperors = append(emperors, em2.Pid())
	started := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	againAfter, again := f1Serving(sctx, urls)
	cancel()
	swept := em2.CountLog("removed the vassal cgroups a dead Emperor left")

	held := gone && len(left) == 0 && again == n
	var b strings.Builder
	fmt.Fprintf(&b, "%d vassals served after %s; recorded %d processes (%d in %d vassal cgroups, %d of them sleep grandchildren; %d descendants, the guardian included); ",
		n, f1Secs(took), len(recorded), inCgroups, len(bases), sleeps, len(desc))
	if gone {
		fmt.Fprintf(&b, "SIGKILL: 0 processes left after %s", Ms(goneAfter))
	} else {
		fmt.Fprintf(&b, "SIGKILL: %d processes still running %s later: %s", len(left), f1Secs(time.Since(killed)), strings.Join(leftNames, " "))
	}
	fmt.Fprintf(&b, ", %d of its vassal cgroup directories left", cgLeft)
	if cgLeft > 0 {
		held = false
	}
	if guardLine == "" {
		b.WriteString(" (no guardian line in the log)")
	} else if c := Field(guardLine, "cgroups"); c != "" {
		fmt.Fprintf(&b, " (guardian: removed %s cgroup directories)", c)
	}
	if again == n {
		fmt.Fprintf(&b, "; new Emperor: all %d serving again after %s", n, f1Secs(againAfter))
	} else {
		fmt.Fprintf(&b, "; new Emperor: only %d of %d serving %s after its start", again, n, f1Secs(time.Since(started)))
	}
	if swept > 0 {
		fmt.Fprintf(&b, " (it had to sweep a dead Emperor's cgroups)")
	}
	return Result{Measured: b.String(), Held: held}, nil
}
