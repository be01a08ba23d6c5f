package vassal_test

// Real peers: our vassal under a real uWSGI Emperor, observed through
// uWSGI's own emperor stats server, and the same scenarios under our
// Emperor, observed through its notes. Each test starts the vassal, waits
// until the Emperor sees it ready, accepting and loyal, touches its config
// while clients keep asking (no request may fail during the reload), then
// removes the config and checks that the vassal and its workers are gone.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
	_ "github.com/emperor-dev/emperor/monitor/files"
)

// peerClients is how many goroutines keep asking during a reload.
const peerClients = 4

// peerAppConfig is the vassal config of both tests: two hello workers on
// an http-socket.
func peerAppConfig(port int, name string) string {
	return fmt.Sprintf(`[uwsgi]
http-socket = 127.0.0.1:%d
worker-exec = %s
processes = 2
worker-reload-mercy = 10
env = NAME=%s
`, port, bins.hello, name)
}

// peerEnv is the environment the Emperors (and so the vassals) get.
func peerEnv() []string {
	env := os.Environ()
	if raceEnabled {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// peerTouch sets the config's mtime to a later whole second than both its
// current one and now: uWSGI compares whole seconds.
func peerTouch(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	next := time.Unix(max(st.ModTime().Unix(), time.Now().Unix())+1, 0)
	if err := os.Chtimes(path, next, next); err != nil {
		t.Fatal(err)
	}
}

// peerChildren lists the direct children of pid (every thread's list: the
// vassal is a Go program).
func peerChildren(pid int) map[int]bool {
	out := map[int]bool{}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out[n] = true
			}
		}
	}
	return out
}

// peerWaitWorkers waits until the vassal has n worker processes and
// returns them.
func peerWaitWorkers(t *testing.T, vassal, n int) map[int]bool {
	t.Helper()
	var kids map[int]bool
	waitFor(t, testkit.Deadline, fmt.Sprintf("%d workers under vassal %d", n, vassal), func() bool {
		kids = peerChildren(vassal)
		return len(kids) == n
	})
	return kids
}

// peerLoad is a set of clients asking the app in a loop, each request on a
// fresh connection, counting what failed and which workers answered.
type peerLoad struct {
	port int
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	ok       int
	failed   int
	failures []string     // the first few failures
	pids     map[int]bool // every worker that answered
	newPid   chan int     // receives the first answer from a pid in watch
	watch    func(pid int) bool
}

// peerStartLoad starts peerClients clients on port. They run until stopped
// (and at the latest until the test ends).
func peerStartLoad(t *testing.T, port int) *peerLoad {
	l := &peerLoad{port: port, stop: make(chan struct{}), pids: map[int]bool{}}
	for range peerClients {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				h, err := get(port)
				l.record(h, err)
				// A short pause: the load must not starve a loaded
				// machine of the CPU the reload itself needs.
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	t.Cleanup(func() { l.halt() })
	return l
}

func (l *peerLoad) record(h hello, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed++
		if len(l.failures) < 10 {
			l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
		return
	}
	l.ok++
	l.pids[h.pid] = true
	if l.watch != nil && l.watch(h.pid) {
		l.newPid <- h.pid // buffered, and watch is cleared at once
		l.watch = nil
	}
}

// halt stops the clients and waits for them.
func (l *peerLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// waitAnswer waits until a client gets an answer from a worker for which
// isNew holds, and returns that worker's pid.
func (l *peerLoad) waitAnswer(t *testing.T, what string, isNew func(pid int) bool) int {
	t.Helper()
	ch := make(chan int, 1)
	l.mu.Lock()
	l.newPid, l.watch = ch, isNew
	l.mu.Unlock()
	select {
	case pid := <-ch:
		return pid
	case <-time.After(testkit.Deadline):
		l.mu.Lock()
		l.watch = nil
		ok, failed := l.ok, l.failed
		l.mu.Unlock()
		t.Fatalf("no answer from %s after %v (%d requests answered, %d failed)", what, testkit.Deadline, ok, failed)
		return 0
	}
}

// check stops the clients and fails t if any request failed.
func (l *peerLoad) check(t *testing.T, during string) {
	t.Helper()
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok == 0 {
		t.Errorf("%s: no request was answered", during)
	}
	if l.failed > 0 {
		t.Errorf("%s: %d of %d requests failed; first failures:\n  %s",
			during, l.failed, l.ok+l.failed, strings.Join(l.failures, "\n  "))
	} else {
		t.Logf("%s: %d requests, none failed", during, l.ok)
	}
}

// peerReload runs the reload scenario: with clients asking throughout, it
// calls touch, waits until a worker that did not exist before answers and
// every old worker exited, and fails t if any request failed. It returns
// the new workers.
func peerReload(t *testing.T, port, vassal int, touch func(), reloaded func()) map[int]bool {
	t.Helper()
	old := peerWaitWorkers(t, vassal, 2)
	load := peerStartLoad(t, port)
	// Answers before the touch: the load works and every answer comes
	// from an old worker.
	load.waitAnswer(t, "an old worker", func(pid int) bool { return old[pid] })
	touch()
	newPid := load.waitAnswer(t, "a new worker", func(pid int) bool { return !old[pid] })
	t.Logf("reload: worker %d answered (old workers %v)", newPid, peerKeys(old))
	if reloaded != nil {
		reloaded()
	}
	for pid := range old {
		waitFor(t, testkit.Deadline, fmt.Sprintf("old worker %d to exit", pid), func() bool { return !alive(pid) })
	}
	// Keep asking a little after the old workers are gone.
	load.waitAnswer(t, "a new worker after the old ones exited", func(pid int) bool { return !old[pid] })
	load.check(t, "reload")
	return peerWaitWorkers(t, vassal, 2)
}

// peerRemoved checks, after the config was removed, that the vassal and
// its workers exit and the port stops answering.
func peerRemoved(t *testing.T, port, vassal int, workers map[int]bool) {
	t.Helper()
	waitFor(t, testkit.Deadline, fmt.Sprintf("vassal %d to exit", vassal), func() bool { return !alive(vassal) })
	for pid := range workers {
		waitFor(t, testkit.Deadline, fmt.Sprintf("worker %d to exit", pid), func() bool { return !alive(pid) })
	}
	waitFor(t, testkit.Deadline, fmt.Sprintf("port %d to stop answering", port), func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
}

func peerKeys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ---- under uWSGI's Emperor ----

// peerStats is what the tests read of uWSGI's emperor stats.
type peerStats struct {
	Vassals []peerVassalStats `json:"vassals"`
}

type peerVassalStats struct {
	ID        string `json:"id"`
	Pid       int    `json:"pid"`
	Ready     int    `json:"ready"`
	Accepting int    `json:"accepting"`
	Loyal     int    `json:"loyal"`
	Respawns  int    `json:"respawns"`
}

// peerReadStats reads uWSGI's emperor stats server once.
func peerReadStats(addr string) (peerStats, error) {
	var s peerStats
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return s, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("stats: %w: %q", err, b)
	}
	return s, nil
}

// peerWaitStats polls the stats until the vassal id satisfies cond (or, for
// a nil cond, until it is no longer listed) and returns its entry.
func peerWaitStats(t *testing.T, addr, id, what string, cond func(peerVassalStats) bool) peerVassalStats {
	t.Helper()
	deadline := time.Now().Add(testkit.Deadline)
	for {
		s, err := peerReadStats(addr)
		if err == nil {
			var (
				v     peerVassalStats
				found bool
			)
			for _, x := range s.Vassals {
				if x.ID == id {
					v, found = x, true
				}
			}
			if cond == nil && !found || cond != nil && found && cond(v) {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s in uWSGI's emperor stats; last: %+v (error %v)", testkit.Deadline, what, s.Vassals, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPeer_UWSGIEmperor(t *testing.T) {
	uwsgi := testenv.UWSGI(t)
	needBinaries(t)
	dir := t.TempDir()
	statsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	output := &testkit.Log{}
	cmd := exec.Command(uwsgi, "--emperor", dir, "--binary-path", bins.vassal,
		"--emperor-stats", statsAddr, "--emperor-freq", "1")
	cmd.Env = peerEnv()
	cmd.Stdout, cmd.Stderr = output, output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// SIGINT: uWSGI's Emperor stops its vassals and exits.
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			// Everything left in the group the test made for uWSGI.
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if strings.Contains(output.String(), "WARNING: DATA RACE") {
			t.Error("the race detector found a data race in the vassal or a worker")
		}
		if t.Failed() || os.Getenv("VASSAL_TEST_LOG") != "" {
			t.Logf("uWSGI Emperor and vassal output:\n%s", output.String())
		}
	})
	// The stats server answers once the Emperor runs.
	waitFor(t, testkit.Deadline, "uWSGI's emperor stats server", func() bool {
		_, err := peerReadStats(statsAddr)
		return err == nil
	})

	port := testenv.FreePort(t)
	ini := writeFile(t, dir, "app.ini", peerAppConfig(port, "uwsgi-vassal"))

	v := peerWaitStats(t, statsAddr, "app.ini", "app.ini ready, accepting and loyal", func(v peerVassalStats) bool {
		return v.Pid > 0 && v.Ready == 1 && v.Accepting == 1 && v.Loyal == 1
	})
	vassal := v.Pid
	t.Logf("uWSGI sees app.ini as %+v", v)
	if h := waitGet(t, port, testkit.Deadline, nil); h.name != "uwsgi-vassal" {
		t.Errorf("answer from %q, want uwsgi-vassal", h.name)
	}

	t.Run("touch reloads without failed requests", func(t *testing.T) {
		peerReload(t, port, vassal, func() { peerTouch(t, ini) }, func() {
			// uWSGI counts the reload and, as the vassal sends 5 again
			// once its new workers answer, sees it accepting again.
			v := peerWaitStats(t, statsAddr, "app.ini", "app.ini reloaded and accepting", func(v peerVassalStats) bool {
				return v.Respawns >= 1 && v.Accepting == 1
			})
			if v.Pid != vassal {
				t.Errorf("vassal pid %d after the reload, want %d (a reload keeps the vassal)", v.Pid, vassal)
			}
			if v.Loyal != 1 {
				t.Errorf("loyal = %d after the reload, want 1", v.Loyal)
			}
		})
	})
	if t.Failed() {
		return
	}

	t.Run("removal stops the vassal", func(t *testing.T) {
		workers := peerChildren(vassal)
		if err := os.Remove(ini); err != nil {
			t.Fatal(err)
		}
		peerRemoved(t, port, vassal, workers)
		peerWaitStats(t, statsAddr, "app.ini", "app.ini gone", nil)
	})
}

// ---- under our Emperor ----

// peerNotes collects our Emperor's notes for one vassal.
type peerNotes struct {
	ch       chan emperor.Note
	mu       sync.Mutex
	overflow bool
	pending  []emperor.Note // arrived, not taken by a wait yet
}

func (p *peerNotes) notify(n emperor.Note) {
	select {
	case p.ch <- n:
	default:
		p.mu.Lock()
		p.overflow = true
		p.mu.Unlock()
	}
}

// wait returns the earliest note not returned yet that matches. Notes that
// do not match stay for later waits.
func (p *peerNotes) wait(t *testing.T, what string, match func(emperor.Note) bool) emperor.Note {
	t.Helper()
	for i, n := range p.pending {
		if match(n) {
			p.pending = append(p.pending[:i:i], p.pending[i+1:]...)
			return n
		}
	}
	deadline := time.After(testkit.Deadline)
	for {
		select {
		case n := <-p.ch:
			if match(n) {
				return n
			}
			p.pending = append(p.pending, n)
		case <-deadline:
			var seen []string
			for _, n := range p.pending {
				seen = append(seen, fmt.Sprintf("%s %s→%s byte=%v(%d) pid=%d %s", n.Key.Name, n.From, n.To, n.IsByte, n.Byte, n.Pid, n.Reason))
			}
			p.mu.Lock()
			overflow := p.overflow
			p.mu.Unlock()
			t.Fatalf("timed out after %v waiting for %s (notes lost: %v); notes not taken:\n  %s",
				testkit.Deadline, what, overflow, strings.Join(seen, "\n  "))
			return emperor.Note{}
		}
	}
}

func peerByte(name string, b byte) func(emperor.Note) bool {
	return func(n emperor.Note) bool { return n.Key.Name == name && n.IsByte && n.Byte == b }
}

func peerState(name string, to emperor.State) func(emperor.Note) bool {
	return func(n emperor.Note) bool { return n.Key.Name == name && !n.IsByte && n.From != n.To && n.To == to }
}

func TestPeer_OurEmperor(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	output := &testkit.Log{}
	logger := output.Logger()

	// The vassals' stdout and stderr: a pipe copied into output.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(output, pr)

	ready := make(chan string, 1)
	mon, err := monitor.Open(dir, monitor.Options{Freq: time.Second, Ready: ready, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	notes := &peerNotes{ch: make(chan emperor.Note, 4096)}
	em, err := emperor.New(emperor.Options{
		Monitors:                 []monitor.Monitor{mon},
		Ready:                    ready,
		Binary:                   bins.vassal,
		Env:                      peerEnv(),
		Stdout:                   pw,
		Stderr:                   pw,
		Logger:                   logger,
		Notify:                   notes.notify,
		PanicOnIllegalTransition: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- em.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("our Emperor did not finish Ragnarok")
		}
		pw.Close()
		if strings.Contains(output.String(), "WARNING: DATA RACE") {
			t.Error("the race detector found a data race in the vassal or a worker")
		}
		if t.Failed() || os.Getenv("VASSAL_TEST_LOG") != "" {
			t.Logf("Emperor log and vassal output:\n%s", output.String())
		}
	})

	const name = "app.ini"
	port := testenv.FreePort(t)
	ini := writeFile(t, dir, name, peerAppConfig(port, "our-vassal"))

	running := notes.wait(t, name+" running", peerState(name, emperor.Running))
	vassal := running.Pid
	notes.wait(t, name+" byte 1 (ready)", peerByte(name, 1))
	notes.wait(t, name+" byte 5 (accepting)", peerByte(name, 5))
	notes.wait(t, name+" byte 17 (loyal)", peerByte(name, 17))
	if vassal <= 0 {
		t.Fatalf("running note without a pid: %+v", running)
	}
	if h := waitGet(t, port, testkit.Deadline, nil); h.name != "our-vassal" {
		t.Errorf("answer from %q, want our-vassal", h.name)
	}

	t.Run("touch reloads without failed requests", func(t *testing.T) {
		peerReload(t, port, vassal, func() { peerTouch(t, ini) }, func() {
			// Accepting again after the reload, from the same vassal.
			n := notes.wait(t, name+" byte 5 after the reload", peerByte(name, 5))
			if n.Pid != vassal {
				t.Errorf("byte 5 from pid %d after the reload, want %d (a reload keeps the vassal)", n.Pid, vassal)
			}
		})
	})
	if t.Failed() {
		return
	}

	t.Run("removal stops the vassal", func(t *testing.T) {
		workers := peerChildren(vassal)
		if err := os.Remove(ini); err != nil {
			t.Fatal(err)
		}
		notes.wait(t, name+" absent", peerState(name, emperor.Absent))
		peerRemoved(t, port, vassal, workers)
	})
}
