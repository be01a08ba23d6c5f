package emperor_test

// Tests of Emperor paths that were wired but never exercised (issue 13):
// emperor-graceful-shutdown with a real uWSGI vassal, exit status 26,
// emperor-no-blacklist, emperor-hook-timeout and a failed poller re-arm.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
	"github.com/emperor-dev/emperor/protocol"
)

// slowApp serves / at once and holds /slow until the test lets it go: it
// connects to the gate socket, says it is in flight, and answers only once
// the test writes to it.
const slowApp = `import os, socket
GATE = %q
def application(env, start_response):
    if env['PATH_INFO'] == '/slow':
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(GATE)
        s.sendall(b"in flight\n")
        s.recv(16)
        s.close()
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b"finished after the stop\n"]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [("worker %%d\n" %% os.getpid()).encode()]
`

// captureOutput returns a pipe for the vassals' stdout and stderr, whose
// output lands in out. Call it before startEmperor, so that the pipe
// closes after the Emperor stopped.
func captureOutput(t *testing.T, out *testkit.Log) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(out, r)
	t.Cleanup(func() {
		w.Close()
		r.Close()
		if t.Failed() {
			t.Logf("vassal output:\n%s", out)
		}
	})
	return w
}

// With emperor-graceful-shutdown, removing a real uWSGI vassal's config
// sends it byte 2: uWSGI shuts down gracefully, so a request in flight
// when the config went is answered in full before the vassal exits; then
// the master and its worker are gone, it exited on its own (not
// SIGKILLed) and the Emperor forgets it.
func TestGracefulShutdownLetsRealUWSGIFinishItsRequest(t *testing.T) {
	uwsgi := testenv.UWSGI(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	gate := filepath.Join(t.TempDir(), "gate.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: gate, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	writeFile(t, filepath.Join(dir, "app.py"), fmt.Sprintf(slowApp, gate))
	ini := filepath.Join(dir, "py.ini")
	// Complete before the first scan (see TestRealUWSGIVassal).
	writeFile(t, ini, fmt.Sprintf("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:%d\nwsgi-file = app.py\nmaster = true\nprocesses = 1\n", port))
	out := &testkit.Log{}
	w := captureOutput(t, out)
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Binary = uwsgi
		o.Env = os.Environ()
		o.GracefulShutdown = true
		o.Stdout, o.Stderr = w, w
	}})
	run := h.WaitState("py.ini", emperor.Running)
	h.WaitNote("byte 5 (accepting)", emperortest.IsByte("py.ini", byte(protocol.Accepting)))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	body := emperortest.WaitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "worker ") })
	worker, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(body, "worker ")))
	if err != nil {
		t.Fatalf("worker pid in %q: %v", body, err)
	}

	// A request in flight...
	type answer struct {
		code int
		body string
		err  error
	}
	answers := make(chan answer, 1)
	go func() {
		c := http.Client{Timeout: testkit.Deadline}
		resp, err := c.Get(url + "slow")
		if err != nil {
			answers <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answers <- answer{resp.StatusCode, string(b), err}
	}()
	l.SetDeadline(time.Now().Add(testkit.Deadline))
	conn, err := l.Accept()
	if err != nil {
		t.Fatalf("the slow request never reached the app: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testkit.Deadline))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "in flight\n" {
		t.Fatalf("app said %q, %v", line, err)
	}

	// ...when the config goes: uWSGI is told to shut down gracefully.
	if err := os.Remove(ini); err != nil {
		t.Fatal(err)
	}
	h.WaitState("py.ini", emperor.Stopping)
	if line := out.WaitFor(t, "received message", "from emperor"); !strings.Contains(line, "received message 2 from emperor") {
		t.Errorf("uWSGI logged %q, want the graceful stop byte 2", line)
	} else {
		out.WaitFor(t, "graceful shutdown triggered")
	}
	// The request is answered although the config is gone.
	conn.Write([]byte("go\n"))
	select {
	case a := <-answers:
		if a.err != nil || a.code != 200 || a.body != "finished after the stop\n" {
			t.Errorf("the request in flight got %d %q, %v: the stop was not graceful", a.code, a.body, a.err)
		}
	case <-time.After(testkit.Deadline):
		t.Fatalf("no answer to the request in flight within %s", testkit.Deadline)
	}

	gone := h.WaitState("py.ini", emperor.Absent)
	if !strings.Contains(gone.Reason, fmt.Sprintf("pid %d: exit status 0", run.Pid)) || strings.Contains(gone.Reason, "killed by") {
		t.Errorf("uWSGI left with %q, want its own exit, status 0", gone.Reason)
	}
	if left := testkit.WaitGone([]int{run.Pid, worker}); len(left) > 0 {
		t.Errorf("uWSGI processes %v (master %d, worker %d) still run after the removal", left, run.Pid, worker)
	}
	if _, err := emperortest.Body(url); err == nil {
		t.Errorf("%s still serves after removal", url)
	}
}

// A vassal that exits with status 26 asks not to be respawned: it is
// Disabled (exiled), not respawned when its unchanged config is seen
// again, and spawned again once its config changes.
func TestExitStatus26StaysDownUntilConfigChanges(t *testing.T) {
	fake := monitortest.New("db")
	h := startEmperor(t, setup{monitors: []monitor.Monitor{fake}})
	touch := func(name, hash, extra string) {
		fake.Events <- monitor.Event{Op: monitor.Touch, Key: monitor.Key{Name: name},
			Config: []byte(h.vassalConfig("name = " + strings.TrimSuffix(name, ".ini") + "\n" + extra)), Version: monitor.Version{Hash: hash}}
	}
	touch("exile.ini", "1", "crash-after = 100ms\nexit-code = 26")
	first := h.WaitState("exile.ini", emperor.Running)
	down := h.WaitNote("exile.ini's exit", func(n emperor.Note) bool {
		// Its channel may close before its exit is seen: Cursed first.
		return n.Key.Name == "exile.ini" && !n.IsByte && (n.From == emperor.Running || n.From == emperor.Cursed) && n.To != emperor.Cursed
	})
	if down.To != emperor.Disabled {
		t.Fatalf("after exit status 26 the vassal went %s because %q, want disabled", down.To, down.Reason)
	}
	if !strings.Contains(down.Reason, fmt.Sprintf("pid %d: exit status 26", first.Pid)) || !strings.Contains(down.Reason, "exiled") {
		t.Errorf("disabled because %q, want exit status 26, exiled", down.Reason)
	}
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Vassals) != 1 || s.Vassals[0].State != "disabled" || s.Vassals[0].Sub != "exiled" || s.Vassals[0].Pid != -1 {
		t.Errorf("stats %+v, want exile.ini disabled/exiled without a process", s.Vassals)
	}
	if len(s.Counters.Restarts) != 0 || len(s.Blacklist) != 0 {
		t.Errorf("an exile counted as a restart (%v) or blacklisted (%v)", s.Counters.Restarts, s.Blacklist)
	}

	// The unchanged config seen again (a rescan) does not bring it back.
	// The monitor's events are applied in order: once the next config is
	// in the table, the rescan was applied.
	touch("exile.ini", "1", "crash-after = 100ms\nexit-code = 26")
	touch("marker.ini", "1", "")
	h.WaitState("marker.ini", emperor.Waiting)
	for _, n := range h.Notes.All() {
		if n.Key.Name == "exile.ini" && n.From == emperor.Disabled {
			t.Fatalf("exiled vassal left Disabled on an unchanged config: %s because %q", n.To, n.Reason)
		}
	}

	// A changed config does.
	touch("exile.ini", "2", "")
	back := h.WaitNote("exile.ini leaves Disabled", func(n emperor.Note) bool {
		return n.Key.Name == "exile.ini" && n.From == emperor.Disabled
	})
	if back.To != emperor.Waiting || back.Reason != "config changed while disabled" {
		t.Errorf("exiled vassal went to %s because %q, want waiting after the config change", back.To, back.Reason)
	}
	again := h.WaitState("exile.ini", emperor.Running)
	if again.Pid == first.Pid || again.Pid <= 0 {
		t.Errorf("respawned as pid %d (first was %d)", again.Pid, first.Pid)
	}
	h.waitReport("the new config's vassal starts", func(r report) bool { return r.Event == "start" && r.Pid == again.Pid })
}

// The blacklist is the respawn penalty of a vassal that keeps dying before
// it is loyal. By default its second death delays its respawn (here by an
// hour) and stats list it; with emperor-no-blacklist it is respawned at
// once every time and never listed.
func TestNoBlacklistNeverDelaysACrashLoop(t *testing.T) {
	crashLoop := func(t *testing.T, noBlacklist bool) *harness {
		dir := t.TempDir()
		h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
			o.NoBlacklist = noBlacklist
			o.Throttle, o.MaxThrottle = time.Hour, time.Hour
			o.ThrottleBurst = -1 // only the blacklist may delay a respawn
		}})
		writeFile(t, filepath.Join(dir, "loop.ini"), h.vassalConfig("name = loop\ncrash-after = 200ms"))
		return h
	}
	t.Run("default", func(t *testing.T) {
		h := crashLoop(t, false)
		h.WaitNote("first death", emperortest.IsDeath("loop.ini"))
		died := h.WaitNote("second death", emperortest.IsDeath("loop.ini"))
		if !strings.Contains(died.Reason, "respawn in 1h0m0s") {
			t.Fatalf("second unloyal death %q, want a respawn penalty of an hour", died.Reason)
		}
		s, err := h.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Blacklist) != 1 || s.Blacklist[0].ID != "loop.ini" || s.Blacklist[0].Attempt != 1 || s.Blacklist[0].Deaths != 2 || s.Blacklist[0].ThrottleLevel != time.Hour.Milliseconds() {
			t.Errorf("blacklist %+v, want loop.ini after 2 deaths (attempt 1, as uWSGI counts), an hour to wait", s.Blacklist)
		}
		if len(s.Vassals) != 1 || s.Vassals[0].State != "waiting" || s.Vassals[0].Sub != "penalty" || s.Vassals[0].Penalty <= 0 {
			t.Errorf("stats %+v, want loop.ini waiting out a penalty", s.Vassals)
		}
	})
	t.Run("emperor-no-blacklist", func(t *testing.T) {
		h := crashLoop(t, true)
		for i := range 4 {
			died := h.WaitNote(fmt.Sprintf("death %d", i+1), emperortest.IsDeath("loop.ini"))
			if strings.Contains(died.Reason, "respawn in") {
				t.Fatalf("death %d penalised with emperor-no-blacklist: %q", i+1, died.Reason)
			}
			h.WaitNote(fmt.Sprintf("respawn %d", i+1), func(n emperor.Note) bool {
				return n.Key.Name == "loop.ini" && n.From == emperor.Waiting && n.To == emperor.Spawning
			})
		}
		s, err := h.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Blacklist) != 0 {
			t.Errorf("blacklist %+v with emperor-no-blacklist", s.Blacklist)
		}
		for _, v := range s.Vassals {
			if v.Penalty != 0 || v.Sub == "penalty" {
				t.Errorf("vassal %s has a penalty (%gs, %s) with emperor-no-blacklist", v.ID, v.Penalty, v.Sub)
			}
		}
	})
}

// An exec-as-emperor hook that outlives emperor-hook-timeout is killed
// with its whole process group (here a shell that left a child behind and
// exec'd a sleep); the Emperor logs it and notes it, and the vassal it ran
// for keeps running.
func TestHookTimeoutKillsTheHooksProcessGroup(t *testing.T) {
	const timeout = time.Second
	dir := t.TempDir()
	fifo := filepath.Join(t.TempDir(), "pids")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Open for reading and writing: never blocks, and the hook's write
	// never waits for a reader.
	pidsIn, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pidsIn.Close()
	if err := pidsIn.SetReadDeadline(time.Now().Add(testkit.Deadline)); err != nil {
		t.Fatal(err)
	}
	hook := fmt.Sprintf("sleep 613 >/dev/null 2>&1 & echo $$ $! > %s; exec sleep 613", fifo)
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.ExecAsEmperor = []string{hook}
		o.HookTimeout = timeout
	}})
	writeFile(t, filepath.Join(dir, "hooked.ini"), h.vassalConfig("name = hooked"))
	run := h.WaitState("hooked.ini", emperor.Running)
	line, err := bufio.NewReader(pidsIn).ReadString('\n')
	if err != nil {
		t.Fatalf("the hook never said its pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(line) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("hook pids %q: %v", line, err)
		}
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("hook pids %q, want the shell's and its child's", line)
	}
	group := pids[0] // the shell leads the hook's group
	// Should the test fail, it leaves no sleep behind.
	t.Cleanup(func() {
		for _, pid := range inGroup(group) {
			unix.Kill(pid, unix.SIGKILL)
		}
	})

	n := h.WaitNote("the hook's outcome", func(n emperor.Note) bool {
		return n.Key.Name == "hooked.ini" && strings.HasPrefix(n.Reason, "exec-as-emperor ")
	})
	if !strings.Contains(n.Reason, "killed after the hook timeout "+timeout.String()) {
		t.Errorf("hook outcome %q, want killed after the timeout", n.Reason)
	}
	if took := n.Time.Sub(run.Time); took < timeout {
		t.Errorf("the hook was killed %s after the spawn, before its timeout %s", took, timeout)
	}
	if h.Log.Find("killed after the hook timeout", "hooked.ini") == "" {
		t.Errorf("the Emperor did not log the hook's timeout")
	}
	if left := testkit.WaitGone(pids); len(left) > 0 {
		t.Errorf("hook processes %v survived its timeout", left)
	}
	if left := inGroup(group); len(left) > 0 {
		t.Errorf("processes %v of the hook's group %d survived its timeout", left, group)
	}

	// The vassal was not touched.
	if !alive(run.Pid) {
		t.Errorf("vassal %d died with its hook", run.Pid)
	}
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Vassals) != 1 || s.Vassals[0].State != "running" || s.Vassals[0].Pid != run.Pid || s.Vassals[0].Restarts != 0 {
		t.Errorf("stats %+v, want hooked.ini still running as %d", s.Vassals, run.Pid)
	}
}

// inGroup lists the running (not zombie) processes of process group pgid.
func inGroup(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		// After the command: state, ppid, pgrp.
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && testkit.Running(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// A kernel that refuses to re-arm a running vassal's fds (epoll out of
// watches) cannot leave a process nobody watches: it is SIGKILLed, counted
// as a failed spawn, and respawned, and the new process is watched as
// usual.
func TestRefusedRearmKillsAndRespawns(t *testing.T) {
	dir := t.TempDir()
	once := failOnce()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Throttle = time.Hour // a second failure would show as a long wait
	}, inject: func(e *emperor.Emperor) { emperor.InjectPollFaults(e, nil, once) }})
	path := filepath.Join(dir, "app.ini")
	writeFile(t, path, h.vassalConfig("name = app"))
	first := h.WaitState("app.ini", emperor.Running)
	cursed := h.WaitState("app.ini", emperor.Cursed)
	if !strings.Contains(cursed.Reason, "cannot watch its fds") {
		t.Errorf("cursed because %q, want that its fds could not be watched", cursed.Reason)
	}
	emperortest.WaitExit(t, first.Pid, "the vassal whose fds could not be re-armed")
	died := h.WaitNote("death", emperortest.IsDeath("app.ini"))
	if !strings.Contains(died.Reason, fmt.Sprintf("pid %d: killed by SIGKILL", first.Pid)) || !strings.Contains(died.Reason, "cannot watch its fds") {
		t.Errorf("death reason %q, want a SIGKILL because its fds could not be watched", died.Reason)
	}
	run := h.WaitState("app.ini", emperor.Running)
	if run.Pid == first.Pid {
		t.Errorf("still the unwatched process %d", run.Pid)
	}
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Counters.Restarts["spawn_failed"] != 1 || len(s.Counters.Restarts) != 1 {
		t.Errorf("restarts %v: want one spawn_failed", s.Counters.Restarts)
	}
	// The new process is watched: its bytes are read, and it gets the
	// reload an edit sends.
	h.WaitNote("the new process accepting", func(n emperor.Note) bool {
		return n.Key.Name == "app.ini" && n.IsByte && n.Byte == byte(protocol.Accepting) && n.Pid == run.Pid
	})
	writeFile(t, path, h.vassalConfig("name = app\n# edited"))
	h.waitReport("reload byte", func(r report) bool { return r.Event == "byte" && r.Byte == 1 && r.Pid == run.Pid })
}
