package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// forkingApp is a WSGI app whose loading leaves a grandchild behind: a
// "sleep" holding the vassal's listening socket, outside uWSGI's
// bookkeeping (its shell parent exits, so it is nobody's worker).
const forkingApp = `import os
os.system("sleep 100000 &")

def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [("pid %d\n" % os.getpid()).encode()]
`

// TestNothingOutlivesAKilledEmperor SIGKILLs an Emperor (cgroups on by
// default as root) whose real uWSGI vassals each left a grandchild holding
// their port. Every process its vassals started dies, their cgroups go,
// and a new Emperor brings every vassal back on its port. Twice: once the
// guardian cleans up, once the guardian is killed first and the next
// Emperor sweeps what the dead one left.
func TestNothingOutlivesAKilledEmperor(t *testing.T) {
	testenv.Root(t)
	uwsgi := testenv.UWSGI(t)
	h, err := cgroup.Open()
	if err != nil {
		testenv.Missing(t, "cgroups: "+err.Error())
	}
	bin := buildBinaries(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.py"), []byte(forkingApp), 0o644)
	var ports []int
	for i := range 3 {
		port := testenv.FreePort(t)
		ports = append(ports, port)
		conf := fmt.Sprintf("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:%d\nwsgi-file = app.py\nmaster = true\nprocesses = 1\n", port)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("app%d.ini", i)), []byte(conf), 0o644)
	}
	start := func(t *testing.T) (*exec.Cmd, *testkit.Log) {
		cmd := exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--binary-path", uwsgi)
		cmd.Env = os.Environ()
		lines := pipeLines(t, cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for _, p := range ports {
			emperortest.WaitServing(t, fmt.Sprintf("http://127.0.0.1:%d/", p), func(b string) bool { return strings.HasPrefix(b, "pid ") })
		}
		return cmd, lines
	}
	for _, killGuardian := range []bool{false, true} {
		t.Run(fmt.Sprintf("guardian killed first %v", killGuardian), func(t *testing.T) {
			cmd, _ := start(t)
			pid := cmd.Process.Pid
			// Each app's shell has forked its sleep by the time it serves;
			// on a loaded machine the child may not have exec'd yet.
			var procs []int
			sleeps := 0
			for deadline := time.Now().Add(testkit.Deadline); ; time.Sleep(20 * time.Millisecond) {
				procs, sleeps = vassalProcs(h, pid), 0
				for _, p := range procs {
					if comm(p) == "sleep" {
						sleeps++
					}
				}
				if sleeps >= len(ports) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d sleeps among the vassals' %d processes, want %d", sleeps, len(procs), len(ports))
				}
			}
			if killGuardian {
				g := guardianOf(pid)
				if g == 0 {
					t.Fatal("no guardian among the Emperor's children")
				}
				syscall.Kill(g, syscall.SIGKILL)
			}
			cmd.Process.Kill()
			cmd.Wait()
			if killGuardian {
				// Nobody cleans up until the next Emperor starts: it finds
				// the dead one's cgroups and ends what runs in them.
				// Another Emperor on this machine (a second test run) may
				// sweep them first: either way they must go.
				_, lines := start(t)
				swept := "removed the vassal cgroups a dead Emperor left"
				if !lines.Await(testkit.Deadline, func() bool { return lines.Find(swept) != "" || len(vassalCgroups(h, pid)) == 0 }) {
					t.Fatalf("nobody removed the dead Emperor's cgroups %v; the new Emperor's log:\n%s", vassalCgroups(h, pid), lines)
				}
			}
			if left := testkit.WaitGone(procs); len(left) > 0 {
				t.Fatalf("%d of the %d processes of a SIGKILLed Emperor's vassals still run: %v", len(left), len(procs), left)
			}
			deadline := time.Now().Add(testkit.Deadline)
			for len(vassalCgroups(h, pid)) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the dead Emperor's cgroups are left: %v", vassalCgroups(h, pid))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !killGuardian {
				for _, p := range ports {
					if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
						c.Close()
						t.Errorf("port %d still answers after the Emperor and its vassals died", p)
					}
				}
				// Every vassal back on its port; then a clean stop, so the
				// next run starts from nothing.
				again, _ := start(t)
				if n := len(vassalProcs(h, again.Process.Pid)); n < len(ports) {
					t.Errorf("the new Emperor's vassals hold %d processes, want at least %d", n, len(ports))
				}
				again.Process.Signal(syscall.SIGTERM)
				if err := again.Wait(); err != nil {
					t.Errorf("the new Emperor after SIGTERM: %v", err)
				}
			}
		})
	}
}

// vassalCgroups lists the vassal cgroup directories an Emperor made.
func vassalCgroups(h *cgroup.Hierarchy, emperor int) []string {
	var out []string
	for _, parent := range h.Parents() {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if owner, ok := cgroup.OwnerOf(e.Name()); ok && owner == emperor {
				out = append(out, filepath.Join(parent, e.Name()))
			}
		}
	}
	return out
}

// vassalProcs lists every process in an Emperor's vassal cgroups.
func vassalProcs(h *cgroup.Hierarchy, emperor int) []int {
	seen := map[int]bool{}
	var out []int
	for _, d := range vassalCgroups(h, emperor) {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// guardianOf finds the guardian among an Emperor's children.
func guardianOf(emperor int) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(b), "(emperor guardian)") && ppid(p) == emperor {
			return p
		}
	}
	return 0
}

func ppid(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// pipeLines keeps an Emperor's stderr, line by line, for WaitFor. A pipe,
// not an io.Writer: cmd.Wait must not wait for the vassals that inherit it.
func pipeLines(t *testing.T, cmd *exec.Cmd) *testkit.Log {
	l, _ := testkit.NewLog()
	r, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.Write([]byte(sc.Text() + "\n"))
		}
	}()
	return l
}
