package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// 10,000 vassal lifetimes, each writing a hostile byte stream to its
// control fd (random bytes, floods, every byte value, config requests it
// never reads, the config fd written the wrong way, a half-closed or closed
// channel, self-inflicted signals), then exiting or lingering. The Emperor
// runs in tyrant mode so every vassal has a config channel to ask on. A
// healthy vassal (bin/vassal + bin/hello) serves HTTP throughout.
func init() {
	register(Scenario{
		Order: 75, Name: "hostile-streams",
		Fault:   "10,000 vassal lifetimes writing hostile byte streams to the control fd (random, floods, all 256 values, unread config requests, closed/half-closed fds, self-kills), then exiting or lingering",
		Hold:    "no Emperor crash; a healthy vassal keeps its pid and serves (HTTP p50/p99 during); stats p50/p99 during vs quiet; nothing left running",
		Timeout: 15 * time.Minute,
		Run:     runHostileStreams,
	})
}

func runHostileStreams(ctx context.Context, env *Env) (Result, error) {
	total := env.Count(10000, 500)
	root, err := worldDir(env, "hostile")
	if err != nil {
		return Result{}, err
	}
	dir, state := filepath.Join(root, "vassals"), filepath.Join(root, "state")
	for _, d := range []string{dir, state} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return Result{}, err
		}
	}
	lifetimes := filepath.Join(state, "lifetimes")
	if err := os.WriteFile(lifetimes, nil, 0o666); err != nil {
		return Result{}, err
	}
	if err := os.Chmod(lifetimes, 0o666); err != nil { // past the umask: vassals run as nobody
		return Result{}, err
	}
	helper, err := buildProtoHelper(ctx, env, root, state)
	if err != nil {
		return Result{}, err
	}
	port, err := FreePort()
	if err != nil {
		return Result{}, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	write := func(name string, text []byte) error {
		tmp := filepath.Join(dir, ".tmp-"+name)
		if err := os.WriteFile(tmp, text, 0o644); err != nil {
			return err
		}
		if err := os.Chown(tmp, nobodyUID, nobodyGID); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(dir, name))
	}
	if err := write("app.ini", []byte(fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\n", port, env.Hello))); err != nil {
		return Result{}, err
	}
	sock := filepath.Join(root, "stats.sock")
	em, err := env.StartEmperor("--emperor", dir, "--binary-path", helper, "--emperor-tyrant",
		"--emperor-stats", sock,
		"--emperor-throttle-burst", "-1", // the scenario paces the spawns
		"--emperor-max-starting", "128", // silent vassals hold a start slot while they live
		"--emperor-curse-tolerance", "2") // deaf lingerers are SIGKILLed soon
	if err != nil {
		return Result{}, err
	}
	if _, err := em.WaitLog(ctx, 0, `msg="vassal is loyal"`, "vassal=app.ini"); err != nil {
		return Result{}, err
	}
	if _, ok := Poll(ctx, func() bool { _, err := Get(url); return err == nil }); !ok {
		return Result{}, fmt.Errorf("%s never served", url)
	}
	s0, err := readStats(sock)
	if err != nil {
		return Result{}, err
	}
	pid0 := s0.vassalPid("app.ini")

	var qStats, qGet, dStats, dGet durSample
	for i := 0; i < 30; i++ {
		qStats.add(timed(func() error { _, err := Stats(sock); return err }))
		qGet.add(timed(func() error { _, err := Get(url); return err }))
		time.Sleep(30 * time.Millisecond)
	}
	stopS := every(ctx, 100*time.Millisecond, func() {
		dStats.add(timed(func() error { _, err := Stats(sock); return err }))
	})
	stopG := every(ctx, 100*time.Millisecond, func() {
		dGet.add(timed(func() error { _, err := Get(url); return err }))
	})

	count := func() int {
		st, err := os.Stat(lifetimes)
		if err != nil {
			return 0
		}
		return int(st.Size() / 8)
	}
	// A window of hostile configs, each removed after about a second (one
	// in 25, a flooder, after 8 s) and replaced: lifetimes spread over time, some
	// respawned meanwhile.
	window, age := env.Count(60, 30), 1200*time.Millisecond
	type live struct {
		name string
		at   time.Time
		life time.Duration
	}
	var current []live
	created := 0
	pad := strings.Repeat("# pad: a config frame that fills the channel when asked for again and again\n", 800)
	began := time.Now()
	for count() < total && ctx.Err() == nil && alive(em) {
		now := time.Now()
		kept := current[:0]
		for _, l := range current {
			if now.Sub(l.at) > l.life {
				os.Remove(filepath.Join(dir, l.name))
			} else {
				kept = append(kept, l)
			}
		}
		current = kept
		for len(current) < window && created < total {
			name := fmt.Sprintf("h-%06d.ini", created)
			life := age
			if created%25 == 0 {
				// It outlives the flood limit, and floods past it.
				name, life = fmt.Sprintf("h-%06d-flood.ini", created), 8*time.Second
			}
			text := "[uwsgi]\nhostile = true\n"
			if created%10 == 0 {
				text += pad // about 60 KB: one frame fills the socket buffer
			}
			if err := write(name, []byte(text)); err != nil {
				return Result{}, err
			}
			current = append(current, live{name, now, life})
			created++
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, l := range current {
		os.Remove(filepath.Join(dir, l.name))
	}
	streams, took := count(), time.Since(began)
	stopS()
	stopG()

	crashed := !alive(em)
	var s1 *statsDoc
	var left []int
	if !crashed {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		Poll(wctx, func() bool {
			s, err := readStats(sock)
			if err == nil {
				s1 = s
			}
			left = leftovers(env, em, pid0)
			return err == nil && s.countPrefix("h-") == 0 && len(left) == 0
		})
		cancel()
	}
	pid1, floods := 0, 0
	restarts := map[string]int{}
	if s1 != nil {
		pid1, floods, restarts = s1.vassalPid("app.ini"), s1.Counters.Floods, s1.Counters.Restarts
	}
	_, serveErr := Get(url)
	okS, errS := dStats.n()
	okG, errG := dGet.n()
	crashes := 0
	if crashed {
		crashes = 1
	}
	var rs []string
	for k, v := range restarts {
		rs = append(rs, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(rs)
	m := fmt.Sprintf("%d streams (%d configs) in %s: crashes %d; healthy pid %d→%d, HTTP p50/p99 %s/%s during (quiet %s/%s), %d/%d ok; stats p50/p99 %s/%s during (quiet %s/%s), %d/%d ok; floods killed %d; restarts: %s; processes left: %d",
		streams, created, took.Round(time.Second), crashes, pid0, pid1,
		Ms(dGet.pct(0.5)), Ms(dGet.pct(0.99)), Ms(qGet.pct(0.5)), Ms(qGet.pct(0.99)), okG, okG+errG,
		Ms(dStats.pct(0.5)), Ms(dStats.pct(0.99)), Ms(qStats.pct(0.5)), Ms(qStats.pct(0.99)), okS, okS+errS,
		floods, strings.Join(rs, ", "), len(left))
	held := !crashed && streams >= total && pid0 != 0 && pid0 == pid1 && serveErr == nil && errG == 0 && errS == 0 &&
		env.Bound(dGet.pct(0.99) < 500*time.Millisecond && dStats.pct(0.99) < 500*time.Millisecond) && len(left) == 0
	return Result{Measured: m, Held: held}, nil
}
