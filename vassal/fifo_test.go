package vassal_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/protocol"
)

// fifoWrite writes cmd to the master FIFO at path once it exists.
func fifoWrite(t *testing.T, path, cmd string) {
	t.Helper()
	waitFor(t, startDeadline, "the master fifo "+path, func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Mode().Type() == os.ModeNamedPipe
	})
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(cmd); err != nil {
		t.Fatal(err)
	}
}

// procState returns the state letter of pid from /proc/PID/stat.
func procState(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+3 > len(data) {
		return ""
	}
	return string(data[i+2 : i+3])
}

func TestFifo_Commands(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	fifo0, fifo1 := filepath.Join(dir, "fifo0"), filepath.Join(dir, "fifo1")
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nmaster-fifo = %s\nmaster-fifo = %s\nworker-reload-mercy = 5\n", port, bins.hello, fifo0, fifo1))
	em := newFakeEmperor(t, false)
	v := startVassal(t, []string{"--ini", ini}, em.files, em.env...)
	em.started()
	em.expect(t, byte(protocol.Spawned), startDeadline)
	em.expect(t, byte(protocol.Accepting), startDeadline)
	em.expect(t, byte(protocol.Loyal), startDeadline)
	first := waitGet(t, port, startDeadline, nil)
	if fi, err := os.Stat(fifo0); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("fifo mode: %v %v", fi, err)
	}

	// r: graceful reload.
	fifoWrite(t, fifo0, "r")
	em.expect(t, byte(protocol.Accepting), startDeadline)
	second := waitGet(t, port, startDeadline, func(h hello) bool { return h.pid != first.pid })

	// B: reinforcements.
	fifoWrite(t, fifo0, "B")
	em.expect(t, byte(protocol.Reinforcements), startDeadline)

	// p: pause, then resume.
	fifoWrite(t, fifo0, "p")
	waitFor(t, startDeadline, "the worker to be stopped", func() bool { return procState(second.pid) == "T" })
	fifoWrite(t, fifo0, "p")
	waitFor(t, startDeadline, "the worker to run again", func() bool { return procState(second.pid) != "T" })
	waitGet(t, port, startDeadline, nil)

	// s: stats in the log; x: unknown.
	fifoWrite(t, fifo0, "sx")
	waitFor(t, startDeadline, "the stats and the unknown command in the log", func() bool {
		out := v.output.String()
		return strings.Contains(out, `msg=stats`) && strings.Contains(out, "unknown command")
	})

	// 1: switch to slot 1; q on slot 0 is then ignored, on slot 1 it stops.
	fifoWrite(t, fifo0, "1")
	waitFor(t, startDeadline, "the slot switch", func() bool {
		return strings.Contains(v.output.String(), "active slot changed")
	})
	fifoWrite(t, fifo0, "q")
	waitFor(t, startDeadline, "the ignored command", func() bool {
		return strings.Contains(v.output.String(), "inactive slot ignored")
	})
	fifoWrite(t, fifo1, "q")
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d after q, want 0", code)
	}
}

func TestFifo_BrutalReloadAndStop(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	// The worker ignores SIGTERM: only SIGKILL (brutal) stops it quickly.
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nworker-exec = trap '' TERM; sleep 600 & wait\nmaster-fifo = %s\nworker-reload-mercy = 600\n", fifo))
	v := startVassal(t, []string{"--ini", ini}, nil)
	var pid int
	waitFor(t, startDeadline, "a worker", func() bool {
		pid = workerPid(v.output.String(), 1)
		return pid != 0
	})
	fifoWrite(t, fifo, "R")
	waitFor(t, exitDeadline, "the old worker to be killed", func() bool { return !alive(pid) })
	fifoWrite(t, fifo, "Q")
	if code := v.wait(t, exitDeadline); code != 0 {
		t.Errorf("exit status %d after Q, want 0", code)
	}
}

// workerPid finds the pid of the first worker of generation gen in the
// vassal's log, or 0.
func workerPid(out string, gen int) int {
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `msg="worker started"`) || !strings.Contains(line, fmt.Sprintf(" gen=%d ", gen)) {
			continue
		}
		_, after, ok := strings.Cut(line, " pid=")
		if !ok {
			continue
		}
		f := strings.Fields(after)
		if n, err := strconv.Atoi(f[0]); err == nil {
			return n
		}
	}
	return 0
}
