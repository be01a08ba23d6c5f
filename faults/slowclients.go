package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// 2,000 stats clients that connect and never read, against an Emperor of
// 1,000 vassals whose stats answer is large. Before the fix a new client
// waited 2.77 s (p90) and the Emperor's RSS went from 22 to 296 MB; the
// stats server now sheds its oldest connections (emperor/server.go).
func init() {
	register(Scenario{
		Order: 80, Name: "slow-stats-clients",
		Fault:   "2,000 stats clients connect and never read (Emperor of 1,000 vassals, stats over TCP, cgroups off)",
		Hold:    "a new client gets a complete answer in under 100 ms (p90); the Emperor's anonymous RSS (heap and stacks: what clients make it hold) within 8 MiB of idle",
		Timeout: 8 * time.Minute,
		Run:     runSlowStatsClients,
	})
}

func runSlowStatsClients(ctx context.Context, env *Env) (Result, error) {
	nVassals, nSlow, nProbes := env.Count(1000, 100), env.Count(2000, 500), 20
	// Room for the slow clients here and, inherited, for the Emperor's
	// vassal fds; the previous limit is restored at the end.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return Result{}, err
	}
	if lim.Cur < lim.Max {
		old := lim
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return Result{}, err
		}
		env.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	if need := uint64(nSlow + 4*nVassals + 256); lim.Cur < need {
		return Result{}, fmt.Errorf("RLIMIT_NOFILE %d is below the %d fds this needs: %w", lim.Cur, need, errSkip)
	}
	root := env.Dir
	dir, state := env.Mkdir("vassals"), env.Mkdir("state")
	helper, err := buildProtoHelper(ctx, env, root, state)
	if err != nil {
		return Result{}, err
	}
	for i := 0; i < nVassals; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("c-%04d.ini", i)), []byte("[uwsgi]\ncheap = true\n"), 0o644); err != nil {
			return Result{}, err
		}
	}
	port, err := FreePort()
	if err != nil {
		return Result{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Without cgroups: reading 1,000 vassals' cgroup usage costs every
	// answer about 0.1 ms a vassal, which would hide what the slow clients
	// cost (the other hostile scenarios run with cgroups).
	em, err := env.StartEmperor("--emperor", dir, "--binary-path", helper, "--emperor-stats", addr, "--emperor-cgroup", "false")
	if err != nil {
		return Result{}, err
	}
	bootBegan := time.Now()
	if _, ok := Poll(ctx, func() bool {
		s, err := readStats(addr)
		if err != nil {
			return false
		}
		running := 0
		for _, v := range s.Vassals {
			if v.State == "running" {
				running++
			}
		}
		return running == nVassals && s.Starting == 0
	}); !ok {
		return Result{}, fmt.Errorf("%d vassals not all running", nVassals)
	}
	boot := time.Since(bootBegan)

	// A complete answer: the whole document, every vassal in it.
	probe := func() (time.Duration, error) {
		return timed(func() error {
			b, err := Stats(addr)
			if err != nil {
				return err
			}
			var s statsDoc
			if err := json.Unmarshal(b, &s); err != nil {
				return fmt.Errorf("incomplete answer (%d bytes): %w", len(b), err)
			}
			if len(s.Vassals) != nVassals {
				return fmt.Errorf("answer lists %d vassals, not %d", len(s.Vassals), nVassals)
			}
			return nil
		})
	}
	var quiet durSample
	for i := 0; i < nProbes; i++ {
		quiet.add(probe())
		time.Sleep(20 * time.Millisecond)
	}
	answerSize := 0
	if b, err := Stats(addr); err == nil {
		answerSize = len(b)
	}
	// Idle: after the quiet probes, no client.
	time.Sleep(time.Second)
	var idle, idleAnon int64
	for i := 0; i < 10; i++ {
		idle = max(idle, vmRSS(em.Pid()))
		idleAnon = max(idleAnon, rssAnon(em.Pid()))
		time.Sleep(50 * time.Millisecond)
	}

	// The slow clients: connect, never read, hold on.
	var peakMu sync.Mutex
	var peak, peakAnon int64
	stopRSS := every(ctx, 10*time.Millisecond, func() {
		r, a := vmRSS(em.Pid()), rssAnon(em.Pid())
		peakMu.Lock()
		peak, peakAnon = max(peak, r), max(peakAnon, a)
		peakMu.Unlock()
	})
	var connsMu sync.Mutex
	var conns []net.Conn
	env.Cleanup(func() {
		connsMu.Lock()
		defer connsMu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	dialErrs := 0
	slowBegan := time.Now()
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				connsMu.Lock()
				if err != nil {
					dialErrs++
				} else {
					conns = append(conns, c)
				}
				connsMu.Unlock()
			}
		}()
	}
	for i := 0; i < nSlow; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	opened := time.Since(slowBegan)

	// New clients while the slow ones hold on.
	var during durSample
	for i := 0; i < nProbes; i++ {
		d, err := probe()
		if err != nil {
			err = fmt.Errorf("after %s: %w", Ms(d), err)
		}
		during.add(d, err)
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	stopRSS()
	after := vmRSS(em.Pid())
	shed := em.CountLog("too many clients")

	crashed := !alive(em)
	okD, errD := during.n()
	growth := peakAnon - idleAnon
	m := fmt.Sprintf("%d vassals (booted in %s, answer %d KiB); %d slow clients opened in %s (%d refused): new client p50/p90/max %s/%s/%s (quiet %s/%s), %d/%d complete; anonymous RSS idle %s, peak %s (+%s); RSS with program text idle %s, peak %s (+%s), after %s; shedding logged %d times",
		nVassals, boot.Round(time.Millisecond), answerSize>>10, nSlow-dialErrs, opened.Round(time.Millisecond), dialErrs,
		Ms(during.pct(0.5)), Ms(during.pct(0.9)), Ms(during.pct(1)), Ms(quiet.pct(0.5)), Ms(quiet.pct(0.9)), okD, okD+errD,
		mib(idleAnon), mib(peakAnon), mib(growth), mib(idle), mib(peak), mib(peak-idle), mib(after), shed)
	if errD > 0 {
		m += fmt.Sprintf("; %d new clients failed, the last: %v", errD, during.last)
	}
	if crashed {
		m += "; the Emperor exited"
	}
	held := !crashed && errD == 0 && okD == nProbes && env.Bound(during.pct(0.9) < 100*time.Millisecond) && idleAnon > 0 && growth <= 8<<20
	return Result{Measured: m, Held: held}, nil
}
