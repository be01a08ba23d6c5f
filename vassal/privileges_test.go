package vassal_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/protocol"
)

// statusField returns a field of /proc/PID/status, or "".
func statusField(pid int, field string) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestPrivileges_UIDGIDCap(t *testing.T) {
	testenv.Root(t)
	needBinaries(t)
	dir := t.TempDir()
	// pidfile2 is written after the drop: its directory must let nobody in.
	open, err := os.MkdirTemp("", "vassal-open-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	pidfile, pidfile2 := filepath.Join(dir, "p1"), filepath.Join(open, "p2")
	port := testenv.FreePort(t)
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf(`[uwsgi]
socket = 127.0.0.1:%d
uid = 65534
gid = 65534
cap = net_bind_service
pidfile = %s
pidfile2 = %s
worker-exec = echo ids=$(id -u):$(id -g) amb=$(grep CapAmb /proc/self/status | cut -f2); exec sleep 600
`, port, pidfile, pidfile2))
	v := startVassal(t, []string{"--ini", ini}, nil)
	waitFor(t, startDeadline, "the worker's ids", func() bool {
		return strings.Contains(v.output.String(), "ids=65534:65534 amb=0000000000000400")
	})
	pid := v.cmd.Process.Pid
	if uid := statusField(pid, "Uid"); !strings.HasPrefix(uid, "65534\t65534") {
		t.Errorf("vassal Uid %q, want 65534", uid)
	}
	for _, p := range []string{pidfile, pidfile2} {
		data, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(pid) {
			t.Errorf("%s: %q, %v", p, data, err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(pidfile2, &st); err != nil || st.Uid != 65534 {
		t.Errorf("pidfile2 owner %d, %v; want 65534 (written after the drop)", st.Uid, err)
	}
	v.cmd.Process.Signal(syscall.SIGTERM)
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

func TestLogto(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	logfile := filepath.Join(dir, "app.log")
	port := testenv.FreePort(t)
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nlogto = %s\n", port, bins.hello, logfile))
	v := startVassal(t, []string{"--ini", ini}, nil)
	waitGet(t, port, startDeadline, nil)
	waitFor(t, startDeadline, "the log file to hold the vassal's and the worker's lines", func() bool {
		data, _ := os.ReadFile(logfile)
		return containsAll(string(data), "vassal=app.ini", "workers ready", "hello[")
	})
	fi, err := os.Stat(logfile)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("log file mode %v, %v; want 0640", fi.Mode().Perm(), err)
	}
	if strings.Contains(v.output.String(), "workers ready") {
		t.Errorf("the log went to stderr too")
	}
}

func TestProcnamePrefix(t *testing.T) {
	needBinaries(t)
	port := testenv.FreePort(t)
	ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nprocname-prefix = px-\n", port, bins.hello))
	v := startVassal(t, []string{"--ini", ini}, nil)
	h := waitGet(t, port, startDeadline, nil)
	comm, _ := os.ReadFile("/proc/" + strconv.Itoa(v.cmd.Process.Pid) + "/comm")
	if got := strings.TrimSpace(string(comm)); got != "px-vassal" {
		t.Errorf("vassal comm %q, want px-vassal", got)
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(h.pid) + "/cmdline")
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	if want := "px-" + bins.hello; string(argv0) != want {
		t.Errorf("worker argv[0] %q, want %q", argv0, want)
	}
}

func TestBinaryPatch(t *testing.T) {
	needBinaries(t)
	for _, opt := range []string{"privileged-binary-patch-arg", "unprivileged-binary-patch-arg"} {
		t.Run(opt, func(t *testing.T) {
			port := testenv.FreePort(t)
			ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = false\n%s = %s\n", port, opt, bins.hello))
			em := newFakeEmperor(t, true)
			v := startVassal(t, []string{"--ini", ini}, em.files, em.env...)
			em.started()
			em.expect(t, byte(protocol.Spawned), startDeadline)
			h := waitGet(t, port, startDeadline, nil)
			pid := v.cmd.Process.Pid
			if h.pid != pid {
				t.Fatalf("answer from pid %d, want the vassal's own pid %d", h.pid, pid)
			}
			environ, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			env := map[string]string{}
			for _, kv := range bytes.Split(environ, []byte{0}) {
				if k, val, ok := strings.Cut(string(kv), "="); ok {
					env[k] = val
				}
			}
			if env["UWSGI_EMPEROR_FD"] != "4" || env["UWSGI_EMPEROR_FD_CONFIG"] != "5" || env["LISTEN_FDS"] != "1" {
				t.Errorf("environment: emperor fd %q, config fd %q, LISTEN_FDS %q", env["UWSGI_EMPEROR_FD"], env["UWSGI_EMPEROR_FD_CONFIG"], env["LISTEN_FDS"])
			}
			// (hello moves fd 3 when it takes the listener over.)
			for _, fd := range []string{"4", "5"} {
				if link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd); err != nil || !strings.HasPrefix(link, "socket:") {
					t.Errorf("fd %s: %q, %v; want a socket", fd, link, err)
				}
			}
		})
	}
}
