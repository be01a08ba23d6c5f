package vassal_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
)

// TestBadInput checks that each kind of bad input makes the vassal exit 1
// with one log line naming the vassal and the cause.
func TestBadInput(t *testing.T) {
	needBinaries(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		conf func(dir string) string
		want []string
	}{
		{"missing worker binary", func(dir string) string {
			return fmt.Sprintf("http-socket = 127.0.0.1:%d\nworker-exec = %s/no-such-binary\n", testenv.FreePort(t), dir)
		}, []string{"exit status 127", "not found", "5 times"}},
		{"port in use", func(string) string {
			return fmt.Sprintf("http-socket = %s\nworker-exec = %s\n", busy.Addr(), bins.hello)
		}, []string{"address already in use", busy.Addr().String()}},
		{"unix socket in a missing directory", func(dir string) string {
			return fmt.Sprintf("socket = %s/nodir/s.sock\nworker-exec = %s\n", dir, bins.hello)
		}, []string{"bind", "no such file or directory"}},
		{"unix socket without permission", func(dir string) string {
			path := "/sys/vassal-test.sock" // refused even to root
			if os.Getuid() != 0 {
				ro := filepath.Join(dir, "ro")
				if err := os.Mkdir(ro, 0o500); err != nil {
					t.Fatal(err)
				}
				path = filepath.Join(ro, "s.sock")
			}
			return fmt.Sprintf("socket = %s\nworker-exec = %s\n", path, bins.hello)
		}, []string{"bind: "}},
		{"never ready", func(string) string {
			// sleep never accepts: the socket stays unanswered.
			return fmt.Sprintf("socket = 127.0.0.1:%d\nworker-exec = sleep 600\nready-timeout = 1\n", testenv.FreePort(t))
		}, []string{"ready-timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ini := writeFile(t, dir, "bad.ini", "[uwsgi]\n"+tt.conf(dir))
			v := startVassal(t, []string{"--ini", ini}, nil)
			if code := v.wait(t, exitDeadline); code != 1 {
				t.Fatalf("exit status %d, want 1", code)
			}
			var failed []string
			for _, line := range strings.Split(v.output.String(), "\n") {
				if strings.Contains(line, `msg="vassal failed"`) {
					failed = append(failed, line)
				}
			}
			if len(failed) != 1 {
				t.Fatalf("%d 'vassal failed' lines, want 1", len(failed))
			}
			want := append([]string{"vassal=bad.ini"}, tt.want...)
			for _, w := range want {
				if !strings.Contains(failed[0], w) {
					t.Errorf("the failure line does not say %q: %s", w, failed[0])
				}
			}
		})
	}
}

// TestReadyTimeout_ReloadKeepsServing: once ready, a reload that never gets
// ready keeps the old workers serving past ready-timeout.
func TestReadyTimeout_ReloadKeepsServing(t *testing.T) {
	const readyTimeout = 5 * time.Second
	needBinaries(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	conf := func(exec string) string {
		return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nready-timeout = %d\nworker-reload-mercy = 1\n", port, exec, int(readyTimeout/time.Second))
	}
	ini := writeFile(t, dir, "app.ini", conf(bins.hello))
	started := time.Now()
	v := startVassal(t, []string{"--ini", ini}, nil)
	first := waitGet(t, port, startDeadline, nil)
	writeFile(t, dir, "app.ini", conf("sleep 600"))
	if err := v.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, startDeadline, "the reload to start", func() bool {
		return strings.Contains(v.output.String(), "gen=2")
	})
	// Past ready-timeout, the first worker still serves and the vassal runs.
	// (The timeout is generous so that the first workers are ready within it
	// on a loaded machine; the window ends a second after it.)
	deadline := started.Add(readyTimeout + time.Second)
	for time.Now().Before(deadline) {
		h, err := get(port)
		if err != nil || h.pid != first.pid {
			t.Fatalf("after a reload that never got ready: %+v, %v", h, err)
		}
		select {
		case <-v.exited:
			t.Fatal("the vassal exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
}
