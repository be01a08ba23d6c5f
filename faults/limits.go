package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Per-vassal cgroup limits under attack: a fork bomb against pids.max and
// a memory hog against the memory limit. Both need root (the Emperor
// makes the cgroups).
func init() {
	register(Scenario{
		Order: 30, Name: "fork-bomb-pids",
		Fault: "a vassal's worker forks sleeps until fork fails (bounded: 10 s, short 5 s); emperor-cgroup-pids 64",
		Hold:  "contained: its cgroup never above 64 tasks, the Emperor's stats and a second vassal keep answering; reported in stats",
		Run:   f1ForkBomb,
	})
	register(Scenario{
		Order: 35, Name: "memory-hog-oom",
		Fault: "a vassal's worker (python3) allocates 100 MB; emperor-cgroup-memory 32M",
		Hold:  "OOM-killed, reported (stats, log, metrics), respawned with a penalty",
		Run:   f1MemoryHog,
	})
}

// f1WriteHealthy writes a vassal config serving hello on a new port and
// returns its URL.
func f1WriteHealthy(env *Env, dir, name string) (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	conf := fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\n", port, env.Hello)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(conf), 0o644); err != nil {
		return "", err
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", port), nil
}

// f1CgroupSweepCleanup empties and removes what is left of the vassal
// cgroups of the Emperor whose pid *emperor holds, when the scenario ends
// (after the Emperor's own stop, registered later, ran).
func f1CgroupSweepCleanup(env *Env, parents []string, emperor *int) {
	env.Cleanup(func() {
		if *emperor == 0 {
			return
		}
		for _, d := range f1VassalCgroups(parents, *emperor, "") {
			for i := 0; i < 50; i++ {
				f1KillAll(f1Procs(d))
				if err := os.Remove(d); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
}

// f1Controller returns the directory of a vassal cgroup that holds file
// (pids.max, memory.oom_control, ...), or "".
func f1Controller(dirs []string, file string) string {
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, file)); err == nil {
			return d
		}
	}
	return ""
}

func f1ForkBomb(ctx context.Context, env *Env) (Result, error) {
	if os.Geteuid() != 0 {
		return Result{}, fmt.Errorf("%w: needs root (cgroup limits)", errSkip)
	}
	if _, err := os.Stat("/bin/bash"); err != nil {
		return Result{}, fmt.Errorf("%w: the bomb is a bash script: %v", errSkip, err)
	}
	parents, err := f1CgroupParents()
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", errSkip, err)
	}
	const limit = 64
	bound := env.Count(10, 5)
	dir := env.Mkdir("vassals")
	healthyURL, err := f1WriteHealthy(env, dir, "healthy.ini")
	if err != nil {
		return Result{}, err
	}
	port, err := FreePort()
	if err != nil {
		return Result{}, err
	}
	bombURL := fmt.Sprintf("http://127.0.0.1:%d/", port)
	// The bomb: forks sleeps for bound seconds (bash's SECONDS needs no
	// fork), whatever fork says, then, the sleeps reaped, serves. A
	// marker makes a respawned worker serve at once: it bombs only once.
	// The bomb waits for the go file, so that it starts once the
	// scenario watches.
	goFile := filepath.Join(env.Dir, "go")
	marker := filepath.Join(env.Dir, "bombed")
	script := fmt.Sprintf(`#!/bin/bash
[ -e %[1]s ] && exec %[2]s
while [ ! -e %[3]s ]; do sleep 0.05; done
: > %[1]s
SECONDS=0
{ while [ $SECONDS -lt %[4]d ]; do sleep 3 & done; } 2>/dev/null
wait
exec %[2]s
`, marker, env.Hello, goFile, bound)
	scriptPath := filepath.Join(env.Dir, "bomb.sh")
	if err := os.WriteFile(scriptPath, []byte(script), 0o755); err != nil {
		return Result{}, err
	}
	conf := fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = exec /bin/bash %s\n", port, scriptPath)
	if err := os.WriteFile(filepath.Join(dir, "bomb.ini"), []byte(conf), 0o644); err != nil {
		return Result{}, err
	}
	sock := filepath.Join(env.Dir, "stats.sock")
	var emPid int
	f1CgroupSweepCleanup(env, parents, &emPid)
	em, err := env.StartEmperor("--emperor", dir, "--binary-path", env.Vassal,
		"--emperor-cgroup-pids", fmt.Sprint(limit), "--emperor-stats", sock)
	if err != nil {
		return Result{}, err
	}
	emPid = em.Pid()
	if _, ok := Poll(ctx, func() bool { _, err := Get(healthyURL); return err == nil }); !ok {
		return Result{}, fmt.Errorf("the healthy vassal never served")
	}
	var pidsDir string
	if _, ok := Poll(ctx, func() bool {
		pidsDir = f1Controller(f1VassalCgroups(parents, emPid, "bomb.ini"), "pids.max")
		return pidsDir != "" && len(f1Procs(pidsDir)) >= 2 // the vassal and its worker
	}); !ok {
		return Result{}, fmt.Errorf("no pids cgroup for bomb.ini below %v", parents)
	}
	pidsMax := f1ReadInt(filepath.Join(pidsDir, "pids.max"))
	events0 := f1ReadKey(filepath.Join(pidsDir, "pids.events"), "max")
	mark := em.LogSize()

	// Watch: the bomb's task count every few ms, the healthy vassal and
	// the stats every 100 ms.
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		return Result{}, err
	}
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, time.Duration(bound)*time.Second+5*time.Second)
	defer cancel()
	var mu sync.Mutex
	peak, statsPeak := int64(0), int64(0)
	// Every pids cgroup the bomb vassal has (a respawn gets a new one):
	// its pids.max, the most pids.events "max" (forks refused) seen.
	maxes := map[string]int64{pidsDir: pidsMax}
	refusals := map[string]int64{pidsDir: events0}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		dirs := []string{pidsDir}
		for i := 0; wctx.Err() == nil; i++ {
			if i%20 == 19 {
				dirs = nil
				for _, d := range f1VassalCgroups(parents, emPid, "bomb.ini") {
					if m := f1ReadInt(filepath.Join(d, "pids.max")); m > 0 {
						dirs = append(dirs, d)
						mu.Lock()
						if _, seen := maxes[d]; !seen {
							maxes[d] = m
							refusals[d] = 0
						}
						mu.Unlock()
					}
				}
			}
			for _, d := range dirs {
				n := f1ReadInt(filepath.Join(d, "pids.current"))
				ev := f1ReadKey(filepath.Join(d, "pids.events"), "max")
				mu.Lock()
				peak = f1Max64(peak, n)
				if ev > refusals[d] {
					refusals[d] = ev
				}
				mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	healthyOK, healthyFail, statsOK, statsFail := 0, 0, 0, 0
	var slowest time.Duration
	bombed := false
	for wctx.Err() == nil {
		t0 := time.Now()
		if _, err := Get(healthyURL); err == nil {
			healthyOK++
		} else {
			healthyFail++
		}
		slowest = f1MaxDur(slowest, time.Since(t0))
		t1 := time.Now()
		if s, err := f1ReadStats(sock); err == nil {
			statsOK++
			if v := s.vassal("bomb.ini"); v != nil && v.Cgroup != nil {
				statsPeak = f1Max64(statsPeak, v.Cgroup.Pids)
			}
		} else {
			statsFail++
		}
		slowest = f1MaxDur(slowest, time.Since(t1))
		// Done once the bomb has served (it reaped its sleeps).
		if _, err := os.Stat(marker); err == nil && time.Since(began) > time.Duration(bound)*time.Second {
			if _, err := Get(bombURL); err == nil {
				bombed = true
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	took := time.Since(began)
	refused := refusals[pidsDir] - events0
	for d, n := range refusals {
		if d != pidsDir {
			refused += n
		}
	}
	maxOK := true
	for _, m := range maxes {
		maxOK = maxOK && m == limit
	}
	s, serr := f1ReadStats(sock)
	limits, bombState, bombRestarts := "", "", 0
	if serr == nil {
		if v := s.vassal("bomb.ini"); v != nil {
			bombState, bombRestarts = v.State, v.Restarts
			if v.Cgroup != nil {
				limits = v.Cgroup.Limits
			}
		}
	}
	// What the log says about the bomb: the Emperor's lines, and what
	// else its vassal wrote (a Go runtime that cannot make a thread
	// aborts with a stack dump).
	warn, crashes, dump, swept := 0, 0, 0, []string{}
	eachLine(em.Log, mark, func(l string) bool {
		switch {
		case strings.Contains(l, "vassal=bomb.ini") && (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")):
			warn++
		case strings.Contains(l, "vassal=bomb.ini") && strings.Contains(l, "killing what the vassal left"):
			swept = append(swept, Field(l, "processes"))
		case strings.Contains(l, "pthread_create failed") || strings.Contains(l, "failed to create new OS thread"):
			crashes++
		}
		if !strings.HasPrefix(l, "time=") && !strings.HasPrefix(l, "hello[") {
			dump++
		}
		return true
	})
	_, forked := os.Stat(marker)

	held := forked == nil && peak <= limit && maxOK && healthyFail == 0 && statsFail == 0 && strings.Contains(limits, fmt.Sprintf("pids=%d", limit))
	var b strings.Builder
	if forked != nil {
		b.WriteString("the bomb never ran; ")
	}
	fmt.Fprintf(&b, "pids.max %d; peak %d tasks in its cgroup (sampled every 2 ms; stats showed up to %d, limits %q); forks refused at the limit: %d; ",
		pidsMax, peak, statsPeak, limits, refused)
	fmt.Fprintf(&b, "healthy vassal %d/%d answers, stats %d/%d, slowest %s; ",
		healthyOK, healthyOK+healthyFail, statsOK, statsOK+statsFail, Ms(slowest))
	if bombed {
		fmt.Fprintf(&b, "the bomb vassal serves again %s after it began", f1Secs(took))
	} else {
		b.WriteString("the bomb vassal did not serve afterwards")
	}
	fmt.Fprintf(&b, " (state %s, %d Emperor restarts, %d WARN/ERROR log lines name it)", bombState, bombRestarts, warn)
	if crashes > 0 {
		fmt.Fprintf(&b, "; its own vassal process aborted %d times (Go runtime: pthread_create failed at the limit), %d lines of stack dump in the log", crashes, dump)
	}
	if len(swept) > 0 {
		fmt.Fprintf(&b, "; the Emperor killed what it left in its cgroup (%s processes)", strings.Join(swept, ", "))
	}
	return Result{Measured: b.String(), Held: held}, nil
}

func f1Max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func f1MaxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

var (
	f1WorkerRespawn  = regexp.MustCompile(`msg="respawning worker".* in=(\S+)`)
	f1EmperorRespawn = regexp.MustCompile(`respawn in ([0-9.]+[a-zµ]+)`)
)

func f1MemoryHog(ctx context.Context, env *Env) (Result, error) {
	if os.Geteuid() != 0 {
		return Result{}, fmt.Errorf("%w: needs root (cgroup limits)", errSkip)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		return Result{}, fmt.Errorf("%w: the hog is python3: %v", errSkip, err)
	}
	parents, err := f1CgroupParents()
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", errSkip, err)
	}
	dir := env.Mkdir("vassals")
	healthyURL, err := f1WriteHealthy(env, dir, "healthy.ini")
	if err != nil {
		return Result{}, err
	}
	port, err := FreePort()
	if err != nil {
		return Result{}, err
	}
	// bytes * n writes every page: 100 MB resident, not a lazy calloc.
	conf := fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = exec /usr/bin/python3 -c \"import time; b = b'x' * (100 << 20); time.sleep(3600)\"\n", port)
	if err := os.WriteFile(filepath.Join(dir, "hog.ini"), []byte(conf), 0o644); err != nil {
		return Result{}, err
	}
	sock := filepath.Join(env.Dir, "stats.sock")
	mport, err := FreePort()
	if err != nil {
		return Result{}, err
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	var emPid int
	f1CgroupSweepCleanup(env, parents, &emPid)
	em, err := env.StartEmperor("--emperor", dir, "--binary-path", env.Vassal,
		"--emperor-cgroup-memory", "32M", "--emperor-stats", sock,
		"--emperor-metrics", fmt.Sprintf("127.0.0.1:%d", mport))
	if err != nil {
		return Result{}, err
	}
	emPid = em.Pid()
	began := time.Now()

	// Sample, until the Emperor penalises a respawn: the OOM count of
	// each memory cgroup the hog had (a new one per process), what stats
	// and metrics show while a process runs.
	sctx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	kills := map[string]int64{}
	var firstOOM time.Duration
	var statsOOM, metricOOM int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; sctx.Err() == nil; i++ {
			for _, d := range f1VassalCgroups(parents, emPid, "hog.ini") {
				n := f1ReadKey(filepath.Join(d, "memory.oom_control"), "oom_kill")
				if n < 0 {
					n = f1ReadKey(filepath.Join(d, "memory.events"), "oom_kill")
				}
				mu.Lock()
				if n > kills[d] {
					kills[d] = n
					if firstOOM == 0 {
						firstOOM = time.Since(began)
					}
				}
				mu.Unlock()
			}
			if s, err := f1ReadStats(sock); err == nil {
				if v := s.vassal("hog.ini"); v != nil && v.Cgroup != nil {
					mu.Lock()
					statsOOM = f1Max64(statsOOM, v.Cgroup.OOMKills)
					mu.Unlock()
				}
			}
			if i%5 == 0 {
				if body, err := Get(metricsURL); err == nil {
					for _, l := range strings.Split(body, "\n") {
						if strings.HasPrefix(l, "emperor_vassal_oom_kills{") && strings.Contains(l, `"hog.ini"`) {
							var x float64
							fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &x)
							mu.Lock()
							metricOOM = f1Max64(metricOOM, int64(x))
							mu.Unlock()
						}
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	// Full: two penalised respawns, to see the penalty grow.
	want := env.Count(2, 1)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	penaltyLine, perr := em.WaitLog(wctx, 0, "vassal=hog.ini", "respawn in")
	if perr == nil && want > 1 {
		if _, ok := Poll(wctx, func() bool { return em.CountLog("vassal=hog.ini", "respawn in") >= want }); !ok {
			perr = fmt.Errorf("fewer than %d penalised respawns", want)
		}
	}
	cancel()
	penaltyAfter := time.Since(began)
	stop()
	wg.Wait()
	var total int64
	for _, n := range kills {
		total += n
	}

	// Reported: the stats, the metrics, the log.
	var lastExit, state string
	var restarts int
	var penalty float64
	var restartsOOM uint64
	if s, err := f1ReadStats(sock); err == nil {
		if v := s.vassal("hog.ini"); v != nil {
			lastExit, state, restarts, penalty = v.LastExit, v.State, v.Restarts, v.Penalty
		}
		restartsOOM = s.Counters.Restarts["oom"]
	}
	metricRestartsOOM := "absent"
	if body, err := Get(metricsURL); err == nil {
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "emperor_restarts_total{") && strings.Contains(l, `reason="oom"`) {
				metricRestartsOOM = l[strings.LastIndexByte(l, ' ')+1:]
			}
		}
	}
	oomLines, workerDeaths, vassalDeaths := 0, 0, 0
	var workerDelays, emperorDelays []string
	eachLine(em.Log, 0, func(l string) bool {
		if !strings.Contains(l, "hog.ini") {
			return true
		}
		if strings.Contains(strings.ToLower(l), "oom") {
			oomLines++
		}
		if strings.Contains(l, `msg="worker died"`) {
			workerDeaths++
		}
		if strings.Contains(l, `msg="vassal waiting"`) && strings.Contains(l, "died: ") {
			vassalDeaths++
		}
		if m := f1WorkerRespawn.FindStringSubmatch(l); m != nil {
			workerDelays = append(workerDelays, m[1])
		}
		if m := f1EmperorRespawn.FindStringSubmatch(l); m != nil {
			emperorDelays = append(emperorDelays, m[1])
		}
		return true
	})
	healthy := "serves"
	if _, err := Get(healthyURL); err != nil {
		healthy = "does NOT serve: " + err.Error()
	}

	reported := (strings.Contains(lastExit, "oom") || strings.Contains(penaltyLine, "oom")) && restartsOOM > 0 && oomLines > 0
	held := total > 0 && reported && perr == nil && healthy == "serves"
	var b strings.Builder
	if total == 0 {
		b.WriteString("no OOM kill seen; ")
	} else {
		fmt.Fprintf(&b, "first OOM kill %s after the Emperor started, %d OOM kills seen in its cgroups (%d worker deaths); ", f1Secs(firstOOM), total, workerDeaths)
	}
	if perr == nil {
		fmt.Fprintf(&b, "the vassal gave up after repeated worker deaths, %d vassal deaths; penalised respawn %s after start (%q); ",
			vassalDeaths, f1Secs(penaltyAfter), f1QuotedField(penaltyLine, "reason"))
	} else {
		fmt.Fprintf(&b, "no penalised respawn within %s (%d vassal deaths); ", f1Secs(penaltyAfter), vassalDeaths)
	}
	fmt.Fprintf(&b, "stats: last_exit %q, state %s, restarts %d (oom: %d), penalty %.1f s, cgroup oom_kills up to %d; ",
		lastExit, state, restarts, restartsOOM, penalty, statsOOM)
	fmt.Fprintf(&b, "metrics: emperor_vassal_oom_kills up to %d, emperor_restarts_total{reason=oom} %s; ", metricOOM, metricRestartsOOM)
	fmt.Fprintf(&b, "log: %d lines name oom; worker respawn delays %s; Emperor respawn delays %s; healthy vassal %s",
		oomLines, f1Shorten(workerDelays, 6), f1Shorten(emperorDelays, 4), healthy)
	return Result{Measured: b.String(), Held: held}, nil
}

// f1Shorten joins the first n items, saying how many more there were.
func f1Shorten(items []string, n int) string {
	if len(items) == 0 {
		return "none"
	}
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" (+%d more)", len(items)-n)
}
