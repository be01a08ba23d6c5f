// Command emperor-bench measures our Emperor and uWSGI's own Emperor side
// by side, on the same real uWSGI vassals, one after the other, and prints
// a table of the two.
//
//	emperor-bench -emperor bin/emperor [-uwsgi /usr/bin/uwsgi] [-quick]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// mibPerVassal is the memory a vassal (master + worker) is assumed to need
// when deciding whether a cold-start size fits the machine.
const mibPerVassal = 6

type settings struct {
	emperor, uwsgi string
	sizes          []int
	reps, coldReps int
	idle           time.Duration
	only           string
	basePort       int
	md             string
	logDir         string
}

func main() {
	// The hidden flooder mode (bench/flood.go): this binary as a vassal.
	if len(os.Args) > 1 && os.Args[1] == floodMode {
		os.Exit(floodVassal(os.Args[2:]))
	}
	os.Exit(run())
}

func run() int {
	var s settings
	var sizes string
	var quick bool
	flag.StringVar(&s.emperor, "emperor", "", "our Emperor binary (needed unless -only uwsgi)")
	flag.StringVar(&s.uwsgi, "uwsgi", "/usr/bin/uwsgi", "the uWSGI binary: its Emperor, and every vassal of both")
	flag.StringVar(&sizes, "n", "100,500,1000", "cold-start sizes; the largest is also used for the steady-state and Ragnarok rows")
	flag.IntVar(&s.reps, "reps", 20, "repetitions of each latency row")
	flag.IntVar(&s.coldReps, "cold-reps", 3, "starts of each cold-start size (the table gives their p50 and p90)")
	flag.DurationVar(&s.idle, "idle", 30*time.Second, "CPU measurement window at steady state")
	flag.StringVar(&s.only, "only", "both", "which Emperor to measure: ours, uwsgi or both")
	flag.BoolVar(&quick, "quick", false, "smoke run: -n 50 -reps 5 -cold-reps 1 -idle 5s (explicit flags win)")
	flag.IntVar(&s.basePort, "base-port", 20000, "first loopback port; uWSGI's vassals use base..base+4999, ours base+5000..base+9999")
	flag.StringVar(&s.md, "md", "", "also write the table as markdown to this file")
	flag.StringVar(&s.logDir, "log-dir", "", "where each Emperor run's log goes (default: a new temporary directory)")
	// The vassal runtime section (bench/vassal*.go).
	var vs vbSettings
	flag.StringVar(&vs.vassal, "vassal", "", "our vassal binary: adds the vassal runtime table (skipped when empty)")
	flag.StringVar(&vs.hello, "hello", "", "the Go hello app (examples/apps/hello) our vassal hosts in the vassal runtime table")
	flag.StringVar(&vs.helloPy, "hello-py", "examples/apps/hello.py", "the Python hello app our vassal hosts in the vassal runtime table")
	flag.IntVar(&vs.reps, "vassal-reps", 0, "starts of each vassal in the vassal runtime table (default -reps; 3 with -quick)")
	// The push section (bench/push.go).
	var pushRows, pushOnly bool
	flag.BoolVar(&pushRows, "push", true, "add the push table: amqp:// and zmq:// publish → serving, 1 and 3 Emperors (needs -emperor)")
	flag.BoolVar(&pushOnly, "push-only", false, "measure only the push table")
	pgConn := flag.String("pg", "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable", "PostgreSQL for the pg:// section (bench/pg.go); off skips it")
	pgOnly := flag.Bool("pg-only", false, "run only the pg:// section")
	// The flood section (bench/flood.go).
	floodRows := flag.Bool("flood", true, "add the flood table: stats, new file and touch latency while one vassal floods its control channel")
	floodOnly := flag.Bool("flood-only", false, "run only the flood section")
	var scf scaleFlags // the scale section (bench/scale*.go)
	scf.register()
	flag.Parse()
	// The Emperors run in their own directories: make paths absolute.
	for _, p := range []*string{&s.emperor, &s.uwsgi, &vs.vassal, &vs.hello, &vs.helloPy} {
		if *p != "" && strings.Contains(*p, "/") {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if quick {
		if !set["n"] {
			sizes = "50"
		}
		if !set["reps"] {
			s.reps = 5
		}
		if !set["idle"] {
			s.idle = 5 * time.Second
		}
		if !set["cold-reps"] {
			s.coldReps = 1
		}
		if !set["vassal-reps"] {
			vs.reps = 3
		}
	}
	if vs.reps <= 0 {
		vs.reps = s.reps
	}
	if err := s.check(sizes); err != nil {
		fmt.Fprintln(os.Stderr, "emperor-bench:", err)
		return 2
	}
	if vs.vassal != "" {
		if _, err := exec.LookPath(vs.vassal); err != nil {
			fmt.Fprintln(os.Stderr, "emperor-bench: -vassal:", err)
			return 2
		}
	}
	raiseNofile()
	watchStalls()
	if pushOnly {
		return runPushOnly(&s)
	}

	if s.logDir == "" {
		d, err := os.MkdirTemp("", "emperor-bench-logs-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "emperor-bench:", err)
			return 1
		}
		s.logDir = d
	} else if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "emperor-bench:", err)
		return 1
	}
	work, err := os.MkdirTemp("", "emperor-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "emperor-bench:", err)
		return 1
	}
	defer os.RemoveAll(work)
	onInterrupt(work)

	if *pgOnly {
		if pt := runPGSection(pgSettingsFrom(&s, *pgConn, quick, work)); pt != nil {
			fmt.Print(pt.text())
		}
		return 0
	}
	began := time.Now()
	header := s.header()
	fmt.Print(header.text())
	fmt.Printf("logs: %s\n\n", s.logDir)
	if scf.only {
		return scaleOnly(&s, &scf, work, header, began)
	}
	if *floodOnly {
		ft := runFloodSection(&s, work)
		fmt.Println()
		fmt.Print(ft.text())
		fmt.Printf("\nrun took %v; logs in %s\n", time.Since(began).Round(time.Second), s.logDir)
		if s.md != "" {
			md := header.markdown() + "\n" + ft.markdown() + fmt.Sprintf("\nThe run took %v.\n", time.Since(began).Round(time.Second))
			if err := os.WriteFile(s.md, []byte(md), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "emperor-bench:", err)
				return 1
			}
		}
		return 0
	}

	vassalExe, err := filepath.EvalSymlinks(s.uwsgi)
	if err != nil {
		fmt.Fprintln(os.Stderr, "emperor-bench:", err)
		return 1
	}
	// Sizes that fit in memory, decided once for both Emperors.
	sizeNotes := map[int]string{}
	var run []int
	avail, err := memAvailable()
	for _, n := range s.sizes {
		need := int64(n) * mibPerVassal << 20
		if err == nil && float64(need) > 0.7*float64(avail) {
			sizeNotes[n] = fmt.Sprintf("skipped: %d vassals need ~%d MiB, more than 70%% of MemAvailable (%d MiB)", n, need>>20, avail>>20)
			fmt.Fprintf(os.Stderr, "cold start N=%d %s\n", n, sizeNotes[n])
			continue
		}
		run = append(run, n)
	}

	var kinds []*emperorKind
	if s.only != "ours" {
		kinds = append(kinds, uwsgiKind(s.uwsgi))
	}
	if s.only != "uwsgi" {
		kinds = append(kinds, oursKind(s.emperor, s.uwsgi))
	}
	results := map[string]*rowSet{}
	for _, k := range kinds {
		results[k.name] = runSide(&s, k, work, vassalExe, run)
	}
	t := buildTable(s.sizes, run, sizeNotes, results)
	// The vassal runtime section, after the Emperors.
	var vt *table
	if vs.vassal != "" {
		vs.uwsgi, vs.only, vs.logDir = s.uwsgi, s.only, s.logDir
		vt = runVassalSection(&vs, work)
	}
	var ft *table
	if *floodRows {
		ft = runFloodSection(&s, work)
	}
	var pt *table
	if pushRows {
		pt = runPushSection(&s, work, s.reps)
	}
	var pgt *table
	if ps := pgSettingsFrom(&s, *pgConn, quick, work); ps != nil && s.emperor != "" {
		pgt = runPGSection(ps)
	}
	st := scaleSection(&s, &scf, work)
	elapsed := time.Since(began)

	fmt.Println()
	fmt.Print(t.text())
	if vt != nil {
		fmt.Println()
		fmt.Print(vt.text())
	}
	for _, extra := range []*table{ft, pt, pgt, st} {
		if extra != nil {
			fmt.Println()
			fmt.Print(extra.text())
		}
	}
	fmt.Printf("\nrun took %v; logs in %s\n", elapsed.Round(time.Second), s.logDir)
	if s.md != "" {
		md := header.markdown() + "\n" + t.markdown()
		if vt != nil {
			md += "\n" + vt.markdown()
		}
		for _, extra := range []*table{ft, pt, pgt, st} {
			if extra != nil {
				md += "\n" + extra.markdown()
			}
		}
		md += fmt.Sprintf("\nThe run took %v.\n", elapsed.Round(time.Second))
		if err := os.WriteFile(s.md, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "emperor-bench:", err)
			return 1
		}
	}
	return 0
}

func (s *settings) check(sizes string) error {
	for f := range strings.SplitSeq(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-n: %q is not a positive size", f)
		}
		s.sizes = append(s.sizes, n)
	}
	slices.Sort(s.sizes)
	s.sizes = slices.Compact(s.sizes)
	switch s.only {
	case "ours", "uwsgi", "both":
	default:
		return fmt.Errorf("-only: want ours, uwsgi or both")
	}
	if s.only != "uwsgi" && s.emperor == "" {
		return fmt.Errorf("-emperor is needed (or -only uwsgi)")
	}
	if s.reps < 1 || s.reps > 999 {
		return fmt.Errorf("-reps: want 1..999")
	}
	if s.coldReps < 1 {
		return fmt.Errorf("-cold-reps: want at least 1")
	}
	if s.idle <= 0 {
		return fmt.Errorf("-idle: want a positive duration")
	}
	// Ports, per Emperor: base (touched vassal), base+1.. (new files),
	// base+1000.. (cold starts, one block per size).
	total := 0
	for _, n := range s.sizes {
		total += n
	}
	if total > 4000 {
		return fmt.Errorf("-n: at most 4000 vassals in all (the port plan has 4000 per Emperor)")
	}
	if s.basePort < 1024 || s.basePort+10000 > 65535 {
		return fmt.Errorf("-base-port: want 1024..55535")
	}
	if lo, hi, err := ephemeralPorts(); err == nil && s.basePort < hi && s.basePort+10000 > lo {
		fmt.Fprintf(os.Stderr, "warning: ports %d..%d overlap the ephemeral range %d..%d\n", s.basePort, s.basePort+9999, lo, hi)
	}
	for _, b := range []string{s.emperor, s.uwsgi} {
		if b == "" {
			continue
		}
		if _, err := exec.LookPath(b); err != nil {
			return err
		}
	}
	return nil
}

func ephemeralPorts() (int, int, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("ip_local_port_range: %q", b)
	}
	return atoi(f[0]), atoi(f[1]), nil
}

// raiseNofile lifts the soft limit on open files to the hard one: a cold
// start probes many ports at once and Ragnarok holds a pidfd per vassal.
// (The Go runtime already does so at start and gives exec'ed children the
// original soft limit back, so this only acts where it did not; the
// Emperors then inherit the raised limit.)
func raiseNofile() {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &l)
	}
}

// onInterrupt stops the running Emperor and its vassals on ^C or SIGTERM,
// then exits.
func onInterrupt(work string) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-c
		fmt.Fprintf(os.Stderr, "\nemperor-bench: %v: stopping the running Emperor\n", sig)
		current.Lock()
		r := current.r
		current.Unlock()
		r.shutdown(syscall.SIGTERM, 15*time.Second)
		os.RemoveAll(work)
		os.Exit(130)
	}()
}

// runSide measures one Emperor: the latency rows on one run, then a run
// per cold-start size; the largest also gives the steady-state and
// Ragnarok rows.
func runSide(s *settings, k *emperorKind, work, vassalExe string, sizes []int) *rowSet {
	rows := newRowSet()
	base := s.basePort + k.portOffset
	progress(k.name, "section start; load average %s", loadavg())
	rows.note("load", "load average at the start of its section %s", loadavg())

	// Latency rows.
	func() {
		dir := mkdir(work, k.name+"-latency")
		ports := []int{base}
		for i := range s.reps {
			ports = append(ports, base+1+i)
		}
		if busy := busyPorts(ports); len(busy) > 0 {
			for _, key := range []string{"newfile", "touch", "kill"} {
				rows.note(key, "skipped: ports in use: %v", busy)
			}
			return
		}
		r, err := startEmperor(k, dir, filepath.Join(s.logDir, k.name+"-latency.log"), vassalExe)
		if err != nil {
			rows.note("newfile", "start: %v", err)
			return
		}
		defer func() {
			r.shutdown(syscall.SIGTERM, eventTimeout)
			reportLog(r)
		}()
		time.Sleep(2 * time.Second) // past the Emperor's first scan
		mark := lateNS.Load()
		measureNewDelete(r, base+1, s.reps, rows)
		noteStalls(rows, "newfile", mark)

		const touched = "touched.ini"
		off := r.logSize()
		if _, err := writeConfig(dir, touched, base); err != nil {
			rows.note("touch", "%v", err)
			return
		}
		if _, err := waitServing(base, pollEvery, time.Now().Add(eventTimeout)); err != nil {
			rows.note("touch", "%v", err)
			rows.note("kill", "%v", err)
			return
		}
		if err := waitLoyal(r, touched, off); err != nil {
			rows.note("touch", "%v", err)
		}
		mark = lateNS.Load()
		measureTouch(r, touched, base, s.reps, rows)
		noteStalls(rows, "touch", mark)
		mark = lateNS.Load()
		measureKill(r, touched, base, s.reps, rows)
		noteStalls(rows, "kill", mark)
	}()

	measureCrashLoop(s, k, rows, work, vassalExe)

	// Cold starts: each size coldReps times; the last start of the
	// largest size goes on to the steady-state and Ragnarok rows.
	first := base + 1000
	for i, n := range sizes {
		block := first
		first += n
		for rep := range s.coldReps {
			last := i == len(sizes)-1 && rep == s.coldReps-1
			coldStart(s, k, rows, work, vassalExe, n, block, rep, last)
		}
	}
	rows.note("load", "load average at the end of its section %s", loadavg())
	progress(k.name, "section done")
	return rows
}

// coldStart times one start of the Emperor on n configs (ports block..),
// until every vassal serves; when last, it then measures the steady state
// and Ragnarok.
func coldStart(s *settings, k *emperorKind, rows *rowSet, work, vassalExe string, n, block, rep int, last bool) {
	key := fmt.Sprintf("cold:%d", n)
	ports := make([]int, n)
	for j := range ports {
		ports[j] = block + j
	}
	if avail, err := memAvailable(); err == nil && float64(int64(n)*mibPerVassal<<20) > 0.7*float64(avail) {
		rows.note(key, "skipped: only %d MiB available now", avail>>20)
		return
	}
	if busy := busyPorts(ports); len(busy) > 0 {
		rows.note(key, "skipped: ports in use: %v", busy[:min(len(busy), 5)])
		return
	}
	dir := mkdir(work, fmt.Sprintf("%s-cold-%d-%d", k.name, n, rep))
	if err := writeColdConfigs(dir, block, n); err != nil {
		rows.note(key, "%v", err)
		return
	}
	progress(k.name, "cold start %d of %d vassals; load average %s", rep, n, loadavg())
	r, err := startEmperor(k, dir, filepath.Join(s.logDir, fmt.Sprintf("%s-cold-%d-%d.log", k.name, n, rep)), vassalExe)
	if err != nil {
		rows.note(key, "start: %v", err)
		return
	}
	defer reportLog(r)
	mark := lateNS.Load()
	t, served, err := waitAllServing(block, n, r.started.Add(coldDeadline(n)))
	noteStalls(rows, key, mark)
	if err != nil {
		rows.add(key, inf)
		rows.note(key, "%v", err)
		progress(k.name, "cold start %d of %d: %v", rep, n, err)
	} else {
		rows.add(key, ms(t.Sub(r.started)))
		progress(k.name, "cold start %d of %d: all %d serving after %.1f ms", rep, n, served, ms(t.Sub(r.started)))
	}
	if !last {
		r.shutdown(syscall.SIGTERM, eventTimeout)
		return
	}
	if err != nil {
		rows.note("cpu", "not measured: the cold start of %d failed", n)
		r.shutdown(syscall.SIGTERM, eventTimeout)
		return
	}
	mark = lateNS.Load()
	steady(r, n, s.idle, rows)
	noteStalls(rows, "cpu", mark)
	mark = lateNS.Load()
	ragnarok(r, syscall.SIGTERM, rows)
	noteStalls(rows, "ragnarok", mark)
}

func mkdir(parent, name string) string {
	d := filepath.Join(parent, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "emperor-bench:", err)
		os.Exit(1)
	}
	return d
}

func busyPorts(ports []int) []int {
	var busy []int
	for _, p := range ports {
		if !portFree(p) {
			busy = append(busy, p)
		}
	}
	return busy
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// reportLog prints our Emperor's warnings and errors from its log, the
// first sign of a misbehaviour.
func reportLog(r *running) {
	if r.kind.name != "ours" {
		return
	}
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return
	}
	var bad []string
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			bad = append(bad, strings.TrimRight(line, "\n"))
		}
	}
	if len(bad) > 0 {
		progress(r.kind.name, "%d warnings/errors in %s, first: %s", len(bad), r.logPath, bad[0])
	}
}
