package vassal_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/protocol"
)

// boundPort waits for the vassal to log the real address of the socket
// option opt and returns its port.
func boundPort(t *testing.T, v *vassalProc, opt string) int {
	t.Helper()
	re := regexp.MustCompile(`msg="socket bound".* option=` + regexp.QuoteMeta(opt) + ` .*bound=127\.0\.0\.1:(\d+)`)
	var port int
	waitFor(t, startDeadline, "the socket to be bound", func() bool {
		m := re.FindStringSubmatch(v.output.String())
		if m == nil {
			return false
		}
		port, _ = strconv.Atoi(m[1])
		return true
	})
	return port
}

func TestSockets_EphemeralAndUwsgiSocket(t *testing.T) {
	needBinaries(t)
	for _, opt := range []string{"http-socket", "uwsgi-socket"} {
		t.Run(opt, func(t *testing.T) {
			ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\n%s = 127.0.0.1:0\nworker-exec = %s\n", opt, bins.hello))
			em := newFakeEmperor(t, false)
			v := startVassal(t, []string{"--ini", ini}, em.files, em.env...)
			em.started()
			em.expect(t, byte(protocol.Spawned), startDeadline)
			want := opt
			if opt == "uwsgi-socket" {
				want = "socket" // same binding, same name
			}
			port := boundPort(t, v, want)
			em.expect(t, byte(protocol.Accepting), startDeadline)
			waitGet(t, port, startDeadline, nil)
			em.send(t, byte(protocol.Stop))
			if code := v.wait(t, exitDeadline); code != 0 {
				t.Errorf("exit status %d, want 0", code)
			}
		})
	}
}

func TestSockets_UnixFilesVacuumPidfile(t *testing.T) {
	needBinaries(t)
	for _, vacuum := range []bool{false, true} {
		t.Run(fmt.Sprintf("vacuum=%v", vacuum), func(t *testing.T) {
			dir := t.TempDir()
			sock, pidfile := filepath.Join(dir, "app.sock"), filepath.Join(dir, "app.pid")
			port := testenv.FreePort(t)
			ini := writeFile(t, dir, "app.ini", fmt.Sprintf(`[uwsgi]
http-socket = 127.0.0.1:%d
socket = %s
chmod-socket = 640
pidfile = %s
vacuum = %v
worker-exec = %s
`, port, sock, pidfile, vacuum, bins.hello))
			v := startVassal(t, []string{"--ini", ini}, nil)
			waitGet(t, port, startDeadline, nil)
			fi, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("socket mode %v, want 0640", fi.Mode().Perm())
			}
			data, err := os.ReadFile(pidfile)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(data)); got != strconv.Itoa(v.cmd.Process.Pid) {
				t.Errorf("pidfile holds %q, want %d", got, v.cmd.Process.Pid)
			}
			v.cmd.Process.Signal(syscall.SIGTERM)
			if code := v.wait(t, exitDeadline); code != 0 {
				t.Fatalf("exit status %d, want 0", code)
			}
			for _, p := range []string{sock, pidfile} {
				_, err := os.Stat(p)
				if gone := errors.Is(err, os.ErrNotExist); gone != vacuum {
					t.Errorf("vacuum=%v: %s removed=%v", vacuum, p, gone)
				}
			}
		})
	}
}

func TestSockets_ChownSocket(t *testing.T) {
	testenv.Root(t)
	needBinaries(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = %s\nchown-socket = 65534:65534\nworker-exec = %s\n", sock, bins.hello))
	startVassal(t, []string{"--ini", ini}, nil)
	waitFor(t, startDeadline, "the socket file", func() bool {
		fi, err := os.Stat(sock)
		if err != nil {
			return false
		}
		st := fi.Sys().(*syscall.Stat_t)
		return st.Uid == 65534 && st.Gid == 65534
	})
}

func TestSockets_ReusePort(t *testing.T) {
	needBinaries(t)
	reuse := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		return errors.Join(err, serr)
	}}
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("reuse-port=%v", on), func(t *testing.T) {
			port := testenv.FreePort(t)
			ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nreuse-port = %v\nworker-exec = %s\n", port, on, bins.hello))
			startVassal(t, []string{"--ini", ini}, nil)
			waitGet(t, port, startDeadline, nil)
			l, err := reuse.Listen(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				l.Close()
			}
			if (err == nil) != on {
				t.Errorf("reuse-port=%v: a second SO_REUSEPORT bind gave %v", on, err)
			}
		})
	}
}

func TestSockets_Shared(t *testing.T) {
	needBinaries(t)
	port := testenv.FreePort(t)
	ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nshared-socket = 127.0.0.1:%d\nhttp-socket = =0\nworker-exec = %s\n", port, bins.hello))
	em := newFakeEmperor(t, false)
	v := startVassal(t, []string{"--ini", ini}, em.files, em.env...)
	em.started()
	em.expect(t, byte(protocol.Spawned), startDeadline)
	em.expect(t, byte(protocol.Accepting), startDeadline)
	em.expect(t, byte(protocol.Loyal), startDeadline)
	old := waitGet(t, port, startDeadline, nil)
	// A reload keeps the shared socket.
	em.send(t, byte(protocol.Reload))
	em.expect(t, byte(protocol.Accepting), startDeadline)
	waitGet(t, port, startDeadline, func(h hello) bool { return h.pid != old.pid })
	em.send(t, byte(protocol.Stop))
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}

	bad := writeFile(t, t.TempDir(), "bad.ini", fmt.Sprintf("[uwsgi]\nshared-socket = 127.0.0.1:%d\nhttp-socket = =1\nworker-exec = %s\n", port, bins.hello))
	v = startVassal(t, []string{"--ini", bad}, nil)
	if code := v.wait(t, exitDeadline); code != 1 {
		t.Errorf("exit status %d with =1 and one shared socket, want 1", code)
	}
	if !strings.Contains(v.output.String(), "names no shared-socket") {
		t.Errorf("the error does not explain =1")
	}
}

// listenerFile returns a listening TCP socket as a file, and its port.
func listenerFile(t *testing.T) (*os.File, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, l.Addr().(*net.TCPAddr).Port
}

func TestSockets_InheritedFD(t *testing.T) {
	needBinaries(t)
	f, port := listenerFile(t)
	ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = fd://3\nworker-exec = %s\n", bins.hello))
	startVassal(t, []string{"--ini", ini}, []*os.File{f})
	f.Close()
	waitGet(t, port, startDeadline, nil)
}

func TestSockets_FdZero(t *testing.T) {
	needBinaries(t)
	f, port := listenerFile(t)
	ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nworker-exec = %s\n", bins.hello))
	v := startVassalWith(t, []string{"--ini", ini}, nil, f)
	f.Close()
	waitGet(t, port, startDeadline, nil)
	if !strings.Contains(v.output.String(), "fd 0") {
		t.Errorf("the adoption of fd 0 is not logged")
	}
}
