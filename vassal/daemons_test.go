package vassal_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// daemonPids returns the pids of the "daemon started" log lines, in order.
func daemonPids(out string) []int {
	var pids []int
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `msg="daemon started"`) {
			continue
		}
		if _, after, ok := strings.Cut(line, " pid="); ok {
			if n, err := strconv.Atoi(strings.Fields(after)[0]); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

func TestDaemons_Attach(t *testing.T) {
	needBinaries(t)
	ini := writeFile(t, t.TempDir(), "app.ini", "[uwsgi]\nworker-exec = sleep 600\nattach-daemon = sleep 600\n")
	v := startVassal(t, []string{"--ini", ini}, nil)
	var first int
	waitFor(t, startDeadline, "the daemon", func() bool {
		p := daemonPids(v.output.String())
		if len(p) > 0 {
			first = p[0]
		}
		return first != 0
	})
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var second int
	waitFor(t, startDeadline, "the daemon's respawn", func() bool {
		p := daemonPids(v.output.String())
		if len(p) > 1 {
			second = p[1]
		}
		return second != 0
	})
	v.cmd.Process.Signal(syscall.SIGTERM)
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if alive(second) {
		t.Errorf("daemon %d survived the vassal", second)
	}
}

func TestDaemons_Smart(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "d.pid")
	// The command daemonizes (a new session) and writes the pidfile.
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nworker-exec = sleep 600\nsmart-attach-daemon = %s setsid sleep 600 > /dev/null 2>&1 & echo $! > %s\n", pidfile, pidfile))
	v := startVassal(t, []string{"--ini", ini}, nil)
	pidIn := func() int {
		data, err := os.ReadFile(pidfile)
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		return n
	}
	var first int
	waitFor(t, startDeadline, "the smart daemon", func() bool {
		first = pidIn()
		return first != 0 && alive(first)
	})
	t.Cleanup(func() { syscall.Kill(first, syscall.SIGKILL) })
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var second int
	waitFor(t, startDeadline, "the smart daemon to be started again", func() bool {
		second = pidIn()
		return second != first && second != 0 && alive(second)
	})
	t.Cleanup(func() { syscall.Kill(second, syscall.SIGKILL) })
	v.cmd.Process.Signal(syscall.SIGTERM)
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	waitFor(t, exitDeadline, "the smart daemon to get SIGTERM", func() bool { return !alive(second) })
}
