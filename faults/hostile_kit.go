package main

// Helpers of the hostile-input scenarios (fuzzed configs, hostile protocol
// streams, slow stats clients): a tiny vassal program built from source
// embedded here, a scratch directory other users can traverse (tyrant
// vassals run as nobody), latency samples, the stats document and the
// Emperor's RSS.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// nobodyUID owns the configs of tyrant-mode scenarios: their vassals run
// as nobody.
const nobodyUID, nobodyGID = 65534, 65534

// protoHelperSource is the vassal program of the hostile scenarios. By the
// name of its config (the last argument, as the Emperor passes it, with
// emperor:// stripped) it is:
//
//   - h-*: a hostile vassal. It claims a lifetime number (a line in
//     stateDir/lifetimes, under a lock), picks a hostile stream by it,
//     writes it to its control fd and exits, kills itself or lingers;
//     h-*-flood* floods for 7 s, past the Emperor's flood limit.
//   - c-*: a cheap vassal: bytes 1 and 5, then it blocks reading its
//     control fd and exits on EOF or a stop byte (0 or 2).
//   - anything else: execs realVassal (bin/vassal) with the same
//     arguments, environment and fds: a healthy vassal.
//
// realVassal and stateDir are set at build time (-X).
const protoHelperSource = `package main

import (
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var realVassal, stateDir string

func main() {
	name := ""
	if n := len(os.Args); n > 1 {
		name = filepath.Base(strings.TrimPrefix(os.Args[n-1], "emperor://"))
	}
	switch {
	case strings.HasPrefix(name, "h-"):
		hostile(name)
	case strings.HasPrefix(name, "c-"):
		cheap()
	default:
		argv := append([]string{realVassal}, os.Args[1:]...)
		err := syscall.Exec(realVassal, argv, os.Environ())
		os.Stderr.WriteString("helper: exec " + realVassal + ": " + err.Error() + "\n")
		os.Exit(1)
	}
}

func fdOf(env string) int {
	n, err := strconv.Atoi(os.Getenv(env))
	if err != nil {
		return -1
	}
	return n
}

func cheap() {
	fd := fdOf("UWSGI_EMPEROR_FD")
	if fd < 0 {
		os.Exit(1)
	}
	syscall.Write(fd, []byte{1, 5})
	var b [64]byte
	for {
		n, err := syscall.Read(fd, b[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			os.Exit(0)
		}
		for _, c := range b[:n] {
			if c == 0 || c == 2 {
				os.Exit(0)
			}
		}
	}
}

var kinds = []string{"random", "flood", "every", "cfgreq", "proto", "volunt", "closefd",
	"silent", "cfgfd", "shutwr", "selfkil", "hbflood", "exile", "nul"}

// claim appends this lifetime's kind to the lifetimes file, 8 bytes a line
// (so its size counts them), and returns its number.
func claim() (int, int) {
	f, err := os.OpenFile(filepath.Join(stateDir, "lifetimes"), os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	st, _ := f.Stat()
	i := int(st.Size() / 8)
	kind := i % len(kinds)
	f.Write([]byte((kinds[kind] + "        ")[:7] + "\n"))
	return i, kind
}

var r *rand.Rand

// put writes what the socket takes now (non-blocking), giving up after
// patience of EAGAIN.
func put(fd int, p []byte, patience time.Duration) int {
	w := 0
	var stuck time.Time
	for len(p) > 0 && fd >= 0 {
		n, err := syscall.Write(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if stuck.IsZero() {
				stuck = time.Now()
			} else if time.Since(stuck) > patience {
				return w
			}
			time.Sleep(time.Millisecond)
			continue
		case err != nil:
			return w
		}
		stuck = time.Time{}
		w += n
		p = p[n:]
	}
	return w
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

func flood(fd int, d time.Duration, gen func() []byte) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if put(fd, gen(), 5*time.Millisecond) == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func hostile(name string) {
	i, kind := claim()
	if strings.Contains(name, "-flood") {
		kind = 1 // its config outlives the flood limit: flood past it
	}
	r = rand.New(rand.NewSource(int64(i)*7919 + time.Now().UnixNano()))
	fd, cfd := fdOf("UWSGI_EMPEROR_FD"), fdOf("UWSGI_EMPEROR_FD_CONFIG")
	if fd >= 0 {
		syscall.SetNonblock(fd, true)
	}
	if cfd >= 0 {
		syscall.SetNonblock(cfd, true)
	}
	patience := 50 * time.Millisecond
	switch kinds[kind] {
	case "random":
		put(fd, randBytes(1+r.Intn(16384)), patience)
	case "flood":
		d := time.Duration(200+r.Intn(1500)) * time.Millisecond
		if strings.Contains(name, "-flood") {
			d = 7 * time.Second // past the Emperor's flood limit: killed for it
		}
		flood(fd, d, func() []byte { return randBytes(4096) })
	case "every":
		b := make([]byte, 0, 1024)
		for k := 0; k < 1+r.Intn(4); k++ {
			for v := 0; v < 256; v++ {
				b = append(b, byte(v))
			}
		}
		if r.Intn(2) == 0 {
			r.Shuffle(len(b), func(x, y int) { b[x], b[y] = b[y], b[x] })
		}
		put(fd, b, patience)
	case "cfgreq":
		// Ask for the config again and again; never read it.
		n := 1 + r.Intn(5000)
		b := make([]byte, n)
		for k := range b {
			b[k] = 2
		}
		put(fd, b, patience)
	case "proto":
		known := []byte{1, 2, 5, 17, 22, 26, 30}
		b := []byte{1, 5, 17}
		for k := 0; k < r.Intn(1000); k++ {
			b = append(b, known[r.Intn(len(known))])
		}
		put(fd, b, patience)
	case "volunt":
		put(fd, []byte{1, 5, 17, 22, 22, 22}, patience)
	case "closefd":
		syscall.Close(fd)
		syscall.Close(cfd)
		fd = -1
	case "silent":
	case "cfgfd":
		put(cfd, randBytes(1+r.Intn(65536)), patience) // the wrong way
		put(fd, randBytes(1+r.Intn(64)), patience)
	case "shutwr":
		put(fd, randBytes(r.Intn(300)), patience)
		syscall.Shutdown(fd, syscall.SHUT_WR)
	case "selfkil":
		put(fd, randBytes(r.Intn(2000)), patience)
		sig := []syscall.Signal{syscall.SIGKILL, syscall.SIGSEGV, syscall.SIGABRT, syscall.SIGTERM}[r.Intn(4)]
		syscall.Kill(os.Getpid(), sig)
		time.Sleep(100 * time.Millisecond)
	case "hbflood":
		hb := make([]byte, 4096)
		for k := range hb {
			hb[k] = 26
		}
		flood(fd, time.Duration(100+r.Intn(1000))*time.Millisecond, func() []byte { return hb })
	case "exile":
		put(fd, []byte{1, 5}, patience)
		os.Exit(26)
	case "nul":
		put(fd, make([]byte, 1+r.Intn(8192)), patience) // byte 0, over and over
	}
	// Then exit, linger until told to stop, or linger deaf.
	switch x := r.Intn(10); {
	case x < 5:
		os.Exit([]int{0, 1, 2, 26, 127, 255}[r.Intn(6)])
	case x < 9:
		linger(fd, time.Duration(r.Intn(2500))*time.Millisecond, true)
	default:
		linger(fd, time.Duration(r.Intn(4000))*time.Millisecond, false)
	}
	os.Exit(0)
}

// linger waits up to d, leaving early on a stop byte or EOF when it
// listens.
func linger(fd int, d time.Duration, listen bool) {
	end := time.Now().Add(d)
	var b [64]byte
	for time.Now().Before(end) {
		if listen && fd >= 0 {
			n, err := syscall.Read(fd, b[:])
			if err == nil && n == 0 || err != nil && err != syscall.EAGAIN && err != syscall.EINTR {
				return
			}
			for _, c := range b[:max(n, 0)] {
				if c == 0 || c == 2 {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}
`

// buildProtoHelper builds protoHelperSource into dir/helper (mode 0755),
// its bin/vassal the suite's and its state in stateDir.
func buildProtoHelper(ctx context.Context, env *Env, dir, stateDir string) (string, error) {
	src := filepath.Join(dir, "helper-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module faultshelper\n\ngo 1.21\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(protoHelperSource), 0o644); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "/usr/local/go/bin/go"
		}
	}
	out := filepath.Join(dir, "helper")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath",
		"-ldflags", fmt.Sprintf("-s -w -X main.realVassal=%s -X main.stateDir=%s", env.Vassal, stateDir),
		"-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the vassal helper: %v: %s", err, b)
	}
	return out, os.Chmod(out, 0o755)
}

// worldDir is a scratch directory nobody can traverse (the suite's own is
// 0700), removed when the scenario ends.
func worldDir(env *Env, name string) (string, error) {
	d, err := os.MkdirTemp("", "emperor-faults-"+name+"-")
	if err != nil {
		return "", err
	}
	env.Cleanup(func() { os.RemoveAll(d) })
	return d, os.Chmod(d, 0o755)
}

// statsDoc is the part of the Emperor's stats these scenarios read.
type statsDoc struct {
	Pid       int `json:"pid"`
	Starting  int `json:"starting"`
	Queued    int `json:"queued"`
	Throttled int `json:"throttled"`
	Vassals   []struct {
		ID    string `json:"id"`
		Pid   int    `json:"pid"`
		State string `json:"state"`
		Sub   string `json:"sub"`
	} `json:"vassals"`
	Counters struct {
		Spawns   int            `json:"spawns"`
		Floods   int            `json:"floods"`
		Restarts map[string]int `json:"restarts"`
	} `json:"counters"`
}

// readStats fetches and decodes the stats at addr.
func readStats(addr string) (*statsDoc, error) {
	b, err := Stats(addr)
	if err != nil {
		return nil, err
	}
	var s statsDoc
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("stats: %w (%d bytes)", err, len(b))
	}
	return &s, nil
}

// vassalPid is the pid of the vassal id in s, 0 when absent.
func (s *statsDoc) vassalPid(id string) int {
	for _, v := range s.Vassals {
		if v.ID == id {
			return v.Pid
		}
	}
	return 0
}

// countPrefix counts the vassals whose id starts with prefix.
func (s *statsDoc) countPrefix(prefix string) int {
	n := 0
	for _, v := range s.Vassals {
		if strings.HasPrefix(v.ID, prefix) {
			n++
		}
	}
	return n
}

// durSample collects durations from several goroutines.
type durSample struct {
	mu   sync.Mutex
	ds   []time.Duration
	errs int
	last error
}

func (d *durSample) add(x time.Duration, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.errs++
		d.last = err
		return
	}
	d.ds = append(d.ds, x)
}

// pct is the q-quantile (nearest rank), 0 when empty.
func (d *durSample) pct(q float64) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d.ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func (d *durSample) n() (ok, errs int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ds), d.errs
}

// every runs fn every period until ctx ends or stop is closed; the
// returned func stops it and waits.
func every(ctx context.Context, period time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			fn()
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }); wg.Wait() }
}

// timed runs fn and returns how long it took and its error.
func timed(fn func() error) (time.Duration, error) {
	t := time.Now()
	err := fn()
	return time.Since(t), err
}

// vmRSS is a process's resident set in bytes (VmRSS), 0 when unknown.
func vmRSS(pid int) int64 { return procStatus(pid, "VmRSS") }

// rssAnon is a process's anonymous resident memory (heap, stacks): what it
// holds, without the pages of its program text it has touched.
func rssAnon(pid int) int64 { return procStatus(pid, "RssAnon") }

// procStatus reads a size field of /proc/PID/status, in bytes; 0 when it
// cannot be read.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// mib formats bytes in MiB.
func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

// alive reports whether the Emperor still runs (never exited).
func alive(em *Emperor) bool {
	select {
	case <-em.Exited():
		return false
	default:
		return Running(em.Pid())
	}
}

// leftovers are the Emperor's descendants outside keep's tree, less its
// own re-executions (the cgroup guardian): what its vassals left running.
func leftovers(env *Env, em *Emperor, keep int) []int {
	skip := map[int]bool{keep: true}
	if keep > 0 {
		for _, p := range Descendants(keep) {
			skip[p] = true
		}
	}
	var out []int
	for _, p := range Descendants(em.Pid()) {
		if skip[p] || !Running(p) {
			continue
		}
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(p) + "/exe"); exe == env.Emperor {
			continue
		}
		out = append(out, p)
	}
	return out
}
