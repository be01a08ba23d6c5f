package vassal_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// zombieChildren lists the zombies among the children of host pid pid.
func zombieChildren(t *testing.T, pid int) []int {
	t.Helper()
	_, zombies := children(t, pid)
	return zombies
}

// children lists the children of pid, and those of them that are zombies.
func children(t *testing.T, pid int) (all, zombies []int) {
	t.Helper()
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, field := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(field)
			all = append(all, n)
			stat, err := os.ReadFile("/proc/" + field + "/stat")
			if err != nil {
				continue
			}
			// "pid (comm) S ...": the state follows the last ')'.
			rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
			if f := strings.Fields(rest); len(f) > 0 && f[0] == "Z" {
				zombies = append(zombies, n)
			}
		}
	}
	return all, zombies
}

// TestOrphansAreReapedByPID1 runs the vassal as PID 1 of its own pid
// namespace, as emperor-use-clone = pid does, with a worker whose children
// leave orphans behind: each is re-parented to the vassal, which must reap
// it, so no zombie piles up under it while it runs.
func TestOrphansAreReapedByPID1(t *testing.T) {
	needBinaries(t)
	testenv.Root(t)
	const orphans = 5
	ini := writeFile(t, t.TempDir(), "app.ini",
		"[uwsgi]\nworker-exec = sh -c 'for i in 1 2 3 4 5; do sh -c \"sleep 0.05 &\"; done; exec sleep 600'\n")
	cmd := exec.Command(bins.vassal, "--ini", ini)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
	v := startVassalCmd(t, cmd)
	waitFor(t, startDeadline, "the worker", func() bool { return strings.Contains(v.output.String(), "worker started") })
	// The orphans exit 50 ms after they are made and re-parent to the
	// vassal (pid 1 of its namespace): wait until its worker is its only
	// child. A vassal that does not reap keeps every one as a zombie.
	waitFor(t, testkit.Deadline, fmt.Sprintf("the vassal to reap its %d orphans", orphans), func() bool {
		all, _ := children(t, cmd.Process.Pid)
		return len(all) == 1
	})
	// Its own worker is still its own: stopping the vassal still works.
	v.cmd.Process.Signal(syscall.SIGTERM)
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}
