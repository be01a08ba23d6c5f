package vassal_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/protocol"
)

// Generous deadlines: the machine may be busy and the vassal may run under
// the race detector. Tests wait on events, never on these.
const (
	startDeadline = 20 * time.Second
	exitDeadline  = 20 * time.Second
)

func TestRun_Standalone(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf(`[uwsgi]
master = true
http-socket = 127.0.0.1:%d
worker-exec = %s
env = NAME=standalone
`, port, bins.hello))
	v := startVassal(t, []string{"--ini", ini}, nil)

	h := waitGet(t, port, startDeadline, nil)
	if h.name != "standalone" {
		t.Errorf("answer from %q, want the env option's NAME=standalone", h.name)
	}
	// hello only serves fd 3 when LISTEN_PID is its own pid: the answer
	// proves the socket passing, and the worker is the answering pid.
	if !alive(h.pid) {
		t.Fatalf("worker pid %d is not running", h.pid)
	}

	if err := v.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if alive(h.pid) {
		t.Errorf("worker %d still running after the vassal exited", h.pid)
	}
	if out := v.output.String(); !strings.Contains(out, "vassal=app.ini") {
		t.Errorf("log lines do not name the vassal:\n%s", out)
	}
}

func TestRun_EmperorProtocol(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	unixSock := filepath.Join(dir, "raw.sock")
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf(`[uwsgi]
http-socket = 127.0.0.1:%d
socket = %s
worker-exec = %s
processes = 2
worker-reload-mercy = 5
vacuum = true
`, port, unixSock, bins.hello))

	em := newFakeEmperor(t, false)
	v := startVassal(t, []string{"--ini", ini}, em.files, em.env...)
	em.started()

	em.expect(t, byte(protocol.Spawned), startDeadline)
	em.expect(t, byte(protocol.Accepting), startDeadline)
	em.expect(t, byte(protocol.Loyal), startDeadline)
	if _, err := os.Stat(unixSock); err != nil {
		t.Fatalf("unix socket not created: %v", err)
	}

	old := waitGet(t, port, startDeadline, nil)

	// Hammer the socket during the reload: no request may fail.
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
		served   atomic.Int64
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := get(port); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					continue
				}
				served.Add(1)
			}
		}()
	}

	em.send(t, byte(protocol.Reload))
	em.expect(t, byte(protocol.Accepting), startDeadline)
	newer := waitGet(t, port, startDeadline, func(h hello) bool { return h.pid != old.pid })
	waitFor(t, exitDeadline, "the old workers to exit", func() bool { return !alive(old.pid) })
	// Every answer now comes from the new generation.
	for range 10 {
		if h, err := get(port); err != nil || h.pid == old.pid {
			t.Fatalf("after the reload: %+v, %v", h, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	for _, err := range failures {
		if errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connection refused during the reload: %v", err)
		} else {
			t.Errorf("request failed during the reload: %v", err)
		}
	}
	t.Logf("%d requests served during the reload, old pid %d, new pid %d", served.Load(), old.pid, newer.pid)

	em.send(t, byte(protocol.Stop))
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d after the stop byte, want 0", code)
	}
	if alive(newer.pid) {
		t.Errorf("worker %d still running after the vassal exited", newer.pid)
	}
	if _, err := os.Stat(unixSock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unix socket left behind: %v", err)
	}
}

func TestRun_EmperorGone(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf(`[uwsgi]
http-socket = 127.0.0.1:%d
worker-exec = %s
`, port, bins.hello))

	em := newFakeEmperor(t, false)
	v := startVassal(t, []string{"--ini", ini}, em.files, em.env...)
	em.started()
	em.expect(t, byte(protocol.Spawned), startDeadline)
	em.expect(t, byte(protocol.Accepting), startDeadline)
	h := waitGet(t, port, startDeadline, nil)

	em.ctl.Close()
	if code := v.wait(t, exitDeadline); code != 1 {
		t.Errorf("exit status %d after the emperor left, want 1", code)
	}
	if alive(h.pid) {
		t.Errorf("worker %d still running after the vassal exited", h.pid)
	}
}

func TestRun_EmperorConfig(t *testing.T) {
	needBinaries(t)
	port1, port2 := testenv.FreePort(t), testenv.FreePort(t)
	conf := func(port int, name string) []byte {
		text := fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nenv = NAME=%s\n", port, bins.hello, name)
		frame, err := protocol.AppendFrame(nil, []byte(text), false)
		if err != nil {
			t.Fatal(err)
		}
		return frame
	}

	em := newFakeEmperor(t, true)
	// The Emperor pushes the first frame right after the spawn.
	if _, err := em.cfg.Write(conf(port1, "first")); err != nil {
		t.Fatal(err)
	}
	v := startVassal(t, []string{"--ini", "emperor://app.ini"}, em.files, em.env...)
	em.started()
	em.expect(t, byte(protocol.Spawned), startDeadline)
	em.expect(t, byte(protocol.Accepting), startDeadline)
	em.expect(t, byte(protocol.Loyal), startDeadline)
	if h := waitGet(t, port1, startDeadline, nil); h.name != "first" {
		t.Fatalf("answer from %q, want first", h.name)
	}

	// On reload the vassal asks for its config; the new one moves the
	// socket and renames the app.
	em.send(t, byte(protocol.Reload))
	em.expect(t, byte(protocol.ConfigRequest), startDeadline)
	if _, err := em.cfg.Write(conf(port2, "second")); err != nil {
		t.Fatal(err)
	}
	em.expect(t, byte(protocol.Accepting), startDeadline)
	if h := waitGet(t, port2, startDeadline, nil); h.name != "second" {
		t.Fatalf("answer from %q, want second", h.name)
	}
	// The old socket is closed once its workers are gone.
	waitFor(t, exitDeadline, "the old socket to close", func() bool {
		_, err := get(port1)
		return errors.Is(err, syscall.ECONNREFUSED)
	})

	em.send(t, byte(protocol.GracefulStop))
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d after the graceful stop byte, want 0", code)
	}
	if !strings.Contains(v.output.String(), "vassal=app.ini") {
		t.Errorf("log lines do not name the vassal app.ini")
	}
}

func TestRun_WorkerRespawn(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf(`[uwsgi]
http-socket = 127.0.0.1:%d
worker-exec = %s
`, port, bins.hello))
	v := startVassal(t, []string{"--ini", ini}, nil)
	first := waitGet(t, port, startDeadline, nil)

	if err := syscall.Kill(first.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := waitGet(t, port, startDeadline, func(h hello) bool { return h.pid != first.pid })
	if second.pid == 0 {
		t.Fatal("no new worker")
	}
	if out := v.output.String(); !strings.Contains(out, "worker died") {
		t.Errorf("the death is not logged:\n%s", out)
	}

	v.cmd.Process.Signal(syscall.SIGINT)
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d after SIGINT, want 0", code)
	}
}

func TestRun_StrictUnknownOption(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf(`[uwsgi]
strict = true
http-socket = 127.0.0.1:%d
worker-exec = %s
no-such-option = 1
`, testenv.FreePort(t), bins.hello))
	v := startVassal(t, []string{"--ini", ini}, nil)
	if code := v.wait(t, exitDeadline); code == 0 {
		t.Fatal("exit status 0 with an unknown option under strict")
	}
	out := v.output.String()
	if !strings.Contains(out, "app.ini:5") || !strings.Contains(out, "no-such-option") {
		t.Errorf("the error does not name app.ini:5 and the option:\n%s", out)
	}
}

// TestRun_Readiness checks the readiness rule for each kind of socket: the
// Emperor hears Accepting and Loyal once the workers serve.
func TestRun_Readiness(t *testing.T) {
	needBinaries(t)
	tests := []struct {
		name    string
		sockets func(dir string, port int) string
		exec    string
	}{
		{"raw tcp socket", func(_ string, port int) string {
			return fmt.Sprintf("socket = 127.0.0.1:%d\n", port)
		}, bins.hello},
		{"unix http-socket", func(dir string, _ int) string {
			return "http-socket = " + filepath.Join(dir, "http.sock") + "\n"
		}, bins.hello},
		{"no socket", func(string, int) string { return "" }, "sleep 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			port := testenv.FreePort(t)
			ini := writeFile(t, dir, "app.ini", "[uwsgi]\n"+tt.sockets(dir, port)+"worker-exec = "+tt.exec+"\n")
			em := newFakeEmperor(t, false)
			v := startVassal(t, []string{"--ini", ini}, em.files, em.env...)
			em.started()
			em.expect(t, byte(protocol.Spawned), startDeadline)
			em.expect(t, byte(protocol.Accepting), startDeadline)
			em.expect(t, byte(protocol.Loyal), startDeadline)
			em.send(t, byte(protocol.Stop))
			if code := v.wait(t, exitDeadline); code != 0 {
				t.Errorf("exit status %d after the stop byte, want 0", code)
			}
		})
	}
}

// TestRun_UnderUWSGIEmperor runs the vassal under a real uWSGI Emperor,
// when uwsgi is installed: spawn, readiness, loyalty, reload on touch, and
// stop.
func TestRun_UnderUWSGIEmperor(t *testing.T) {
	needBinaries(t)
	uwsgi := testenv.UWSGI(t)
	dir := t.TempDir()
	vassals := filepath.Join(dir, "vassals")
	if err := os.Mkdir(vassals, 0o755); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	conf := func(name string) string {
		return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nenv = NAME=%s\n", port, bins.hello, name)
	}
	ini := writeFile(t, vassals, "app.ini", conf("first"))

	out := &syncBuffer{}
	cmd := exec.Command(uwsgi, "--emperor", vassals, "--binary-path", bins.vassal, "--emperor-freq", "1")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "VASSAL_DEBUG=1", "GORACE=atexit_sleep_ms=0")
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
		select {
		case <-exited:
		default:
			cmd.Process.Kill() // its vassals die with it (Pdeathsig)
			select {
			case <-exited:
			case <-time.After(exitDeadline):
				t.Error("uwsgi still running after SIGKILL")
			}
		}
		if t.Failed() {
			t.Logf("uwsgi output:\n%s", out.String())
		}
	})

	first := waitGet(t, port, startDeadline, nil)
	if first.name != "first" {
		t.Fatalf("answer from %q, want first", first.name)
	}
	waitFor(t, startDeadline, "uWSGI to see the vassal loyal", func() bool {
		return strings.Contains(out.String(), "vassal app.ini is now loyal")
	})

	// Editing the file makes the Emperor send a reload.
	if err := os.WriteFile(ini, []byte(conf("second")), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(ini, future, future); err != nil {
		t.Fatal(err)
	}
	second := waitGet(t, port, startDeadline, func(h hello) bool { return h.name == "second" })
	waitFor(t, exitDeadline, "the old worker to exit", func() bool { return !alive(first.pid) })

	// Ragnarok: the Emperor stops its vassals and exits.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(exitDeadline):
		t.Fatal("uwsgi did not exit")
	}
	if alive(second.pid) {
		t.Errorf("worker %d survived the Emperor", second.pid)
	}
	if s := out.String(); strings.Contains(s, "WARNING: DATA RACE") {
		t.Error("data race in the vassal")
	}
}
