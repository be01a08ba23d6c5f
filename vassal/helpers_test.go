package vassal_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/testenv"
)

// bins are the binaries TestMain builds: the vassal and the hello app.
var bins struct {
	vassal, hello string
	skip          string // why the process tests cannot run
}

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if _, err := exec.LookPath("go"); err != nil {
			bins.skip = "the go tool is not installed"
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "vassal-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bins.vassal = filepath.Join(dir, "vassal")
		bins.hello = filepath.Join(dir, "hello")
		for _, b := range []struct{ out, pkg string }{
			{bins.vassal, "github.com/emperor-dev/emperor/cmd/vassal"},
			{bins.hello, "github.com/emperor-dev/emperor/examples/apps/hello"},
		} {
			args := []string{"build", "-o", b.out}
			if raceEnabled {
				// The vassal is the code under test: run it with the
				// race detector too.
				args = append(args, "-race")
			}
			cmd := exec.Command("go", append(args, b.pkg)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.pkg, err, out)
				return 1
			}
		}
		return m.Run()
	}())
}

// needBinaries skips t when the binaries could not be built.
func needBinaries(t *testing.T) {
	t.Helper()
	if bins.skip != "" {
		testenv.Missing(t, bins.skip)
	}
}

// syncBuffer is an io.Writer safe for the exec copying goroutine and the
// test reading it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// vassalProc is a vassal started by a test.
type vassalProc struct {
	cmd    *exec.Cmd
	output *syncBuffer // stdout and stderr of the vassal and its workers
	exited chan struct{}
	err    error // from Wait, valid once exited is closed
}

// startVassal runs the vassal binary with args. files become fds 3, 4, ...
// of the vassal; env is added to the test's environment.
func startVassal(t *testing.T, args []string, files []*os.File, env ...string) *vassalProc {
	t.Helper()
	return startVassalWith(t, args, files, nil, env...)
}

// startVassalWith is startVassal with stdin (fd 0) set to stdin when it is
// not nil.
func startVassalWith(t *testing.T, args []string, files []*os.File, stdin *os.File, env ...string) *vassalProc {
	t.Helper()
	cmd := exec.Command(bins.vassal, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = files
	return startVassalCmd(t, cmd)
}

// startVassalCmd starts a vassal command prepared by the caller (its
// binary, arguments, environment, files and process attributes), capturing
// its output, and stops it when the test ends.
func startVassalCmd(t *testing.T, cmd *exec.Cmd) *vassalProc {
	t.Helper()
	v := &vassalProc{output: &syncBuffer{}, exited: make(chan struct{}), cmd: cmd}
	if v.cmd.Env == nil {
		v.cmd.Env = os.Environ()
	}
	if raceEnabled {
		// A race-enabled binary sleeps a second at exit by default.
		v.cmd.Env = append(v.cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	v.cmd.Stdout = v.output
	v.cmd.Stderr = v.output
	v.cmd.WaitDelay = 10 * time.Second
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		v.err = v.cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-v.exited:
		default:
			v.cmd.Process.Kill() // its workers die with it (Pdeathsig)
			<-v.exited
		}
		if strings.Contains(v.output.String(), "WARNING: DATA RACE") {
			t.Error("the race detector found a data race in the vassal or a worker")
		}
		if t.Failed() || os.Getenv("VASSAL_TEST_LOG") != "" {
			t.Logf("vassal output:\n%s", v.output.String())
		}
	})
	return v
}

// wait waits up to d for the vassal to exit and returns its exit code.
func (v *vassalProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-v.exited:
	case <-time.After(d):
		t.Fatalf("vassal still running after %v", d)
	}
	var ee *exec.ExitError
	if errors.As(v.err, &ee) {
		return ee.ExitCode()
	}
	if v.err != nil {
		t.Fatalf("vassal: %v", v.err)
	}
	return 0
}

// writeFile writes a config file into dir and returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// client makes a fresh connection for every request, so each one goes
// through the listen queue.
var client = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// hello is what the hello app answered.
type hello struct {
	name string
	pid  int
}

// get asks the hello app on port for its greeting.
func get(port int) (hello, error) {
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return hello{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return hello{}, err
	}
	var h hello
	if _, err := fmt.Sscanf(string(body), "hello from %s pid %d\n", &h.name, &h.pid); err != nil {
		return hello{}, fmt.Errorf("unexpected answer %q: %w", body, err)
	}
	return h, nil
}

// waitFor polls cond every 10 ms until it holds, failing t after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGet polls the app on port until it answers, and returns the answer.
func waitGet(t *testing.T, port int, d time.Duration, accept func(hello) bool) hello {
	t.Helper()
	var (
		h       hello
		lastErr error
	)
	waitFor(t, d, fmt.Sprintf("an answer on port %d", port), func() bool {
		h, lastErr = get(port)
		return lastErr == nil && (accept == nil || accept(h))
	})
	return h
}

// alive reports whether process pid exists (and is not a zombie).
func alive(pid int) bool {
	if err := unix.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || !strings.HasPrefix(string(stat[i+1:]), " Z")
}

// fakeEmperor is the Emperor's side of the protocol channels.
type fakeEmperor struct {
	ctl, cfg net.Conn   // the test's ends
	files    []*os.File // the vassal's ends, for ExtraFiles
	env      []string   // UWSGI_EMPEROR_FD and maybe UWSGI_EMPEROR_FD_CONFIG
}

// newFakeEmperor makes the control channel (vassal fd 3) and, with
// withConfig, the config channel (vassal fd 4).
func newFakeEmperor(t *testing.T, withConfig bool) *fakeEmperor {
	t.Helper()
	e := &fakeEmperor{}
	pair := func() (net.Conn, *os.File) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		ours := os.NewFile(uintptr(fds[0]), "emperor-end")
		conn, err := net.FileConn(ours)
		ours.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		theirs := os.NewFile(uintptr(fds[1]), "vassal-end")
		t.Cleanup(func() { theirs.Close() })
		return conn, theirs
	}
	var f *os.File
	e.ctl, f = pair()
	e.files = append(e.files, f)
	e.env = append(e.env, "UWSGI_EMPEROR_FD=3")
	if withConfig {
		e.cfg, f = pair()
		e.files = append(e.files, f)
		e.env = append(e.env, "UWSGI_EMPEROR_FD_CONFIG=4")
	}
	return e
}

// started closes the vassal's ends in the test once the vassal has them.
func (e *fakeEmperor) started() {
	for _, f := range e.files {
		f.Close()
	}
}

// expect reads the next control byte, failing t unless it is want.
func (e *fakeEmperor) expect(t *testing.T, want byte, d time.Duration) {
	t.Helper()
	e.ctl.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	if _, err := io.ReadFull(e.ctl, b[:]); err != nil {
		t.Fatalf("waiting for byte %d from the vassal: %v", want, err)
	}
	if b[0] != want {
		t.Fatalf("vassal sent byte %d, want %d", b[0], want)
	}
}

// send writes a control byte to the vassal.
func (e *fakeEmperor) send(t *testing.T, b byte) {
	t.Helper()
	if _, err := e.ctl.Write([]byte{b}); err != nil {
		t.Fatal(err)
	}
}
