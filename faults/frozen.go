package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const f1WSGIApp = `import os
def application(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [("worker %d\n" % os.getpid()).encode()]
`

// A real uWSGI vassal sending heartbeats is frozen (SIGSTOP to its process
// group, master and worker): the Emperor must notice the missing heartbeat,
// kill it and respawn it, and the new one must serve.
func init() {
	register(Scenario{
		Order: 20, Name: "frozen-uwsgi-heartbeat",
		Fault: "a real uWSGI vassal (heartbeat = 1) frozen: SIGSTOP to its process group; emperor-required-heartbeat 3",
		Hold:  "killed and respawned for its missing heartbeat, serving again; time from the freeze (uWSGI: about 4 s)",
		Run:   f1Frozen,
	})
}

func f1Frozen(ctx context.Context, env *Env) (Result, error) {
	if env.UWSGI == "" {
		return Result{}, fmt.Errorf("%w: uWSGI is not installed (no uwsgi in PATH; Debian: apt-get install uwsgi-core uwsgi-plugin-python3)", errSkip)
	}
	if _, err := os.Stat("/usr/lib/uwsgi/plugins/python3_plugin.so"); err != nil {
		return Result{}, fmt.Errorf("%w: uWSGI's python3 plugin is not installed: %v", errSkip, err)
	}
	dir := env.Mkdir("vassals")
	port, err := FreePort()
	if err != nil {
		return Result{}, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(f1WSGIApp), 0o644); err != nil {
		return Result{}, err
	}
	// Written whole before the Emperor starts: the first scan sees it once.
	conf := fmt.Sprintf("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:%d\nwsgi-file = app.py\nmaster = true\nprocesses = 1\nheartbeat = 1\n", port)
	if err := os.WriteFile(filepath.Join(dir, "hb.ini"), []byte(conf), 0o644); err != nil {
		return Result{}, err
	}
	sock := filepath.Join(env.Dir, "stats.sock")
	em, err := env.StartEmperor("--emperor", dir, "--binary-path", env.UWSGI,
		"--emperor-required-heartbeat", "3", "--emperor-stats", sock)
	if err != nil {
		return Result{}, err
	}
	line, err := em.WaitLog(ctx, 0, `msg="vassal running"`, "vassal=hb.ini")
	if err != nil {
		return Result{}, err
	}
	pid := 0
	fmt.Sscan(Field(line, "pid"), &pid)
	if pid <= 0 {
		return Result{}, fmt.Errorf("no pid in %q", line)
	}
	// Whatever happens, nothing frozen is left behind: the group is
	// thawed and killed if its leader still runs.
	env.Cleanup(func() {
		if Running(pid) && f1Pgrp(pid) == pid {
			syscall.Kill(-pid, syscall.SIGKILL)
			syscall.Kill(-pid, syscall.SIGCONT)
		}
	})
	first := ""
	if _, ok := Poll(ctx, func() bool {
		b, err := Get(url)
		first = b
		return err == nil && strings.HasPrefix(b, "worker ")
	}); !ok {
		return Result{}, fmt.Errorf("%s never served", url)
	}
	// The heartbeat supervision starts with the first heartbeat.
	if _, ok := Poll(ctx, func() bool {
		s, err := f1ReadStats(sock)
		if err != nil {
			return false
		}
		v := s.vassal("hb.ini")
		return v != nil && v.LastHeartbeat > 0
	}); !ok {
		return Result{}, errors.New("the stats never showed a heartbeat of hb.ini")
	}
	if g := f1Pgrp(pid); g != pid {
		return Result{}, fmt.Errorf("the vassal %d leads no process group of its own (pgrp %d)", pid, g)
	}
	frozen := append([]int{pid}, Descendants(pid)...)
	mark := em.LogSize()
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		return Result{}, err
	}
	began := time.Now()

	var notes []string
	held := true
	killLine, err := em.WaitLog(ctx, mark, "missed its heartbeat", "vassal=hb.ini")
	if err != nil {
		return Result{Measured: fmt.Sprintf("frozen %d processes; never killed for its heartbeat: %v", len(frozen), err)}, nil
	}
	killedAfter := time.Since(began)
	// The respawn: a running line after the freeze.
	l, err := em.WaitLog(ctx, mark, `msg="vassal running"`, "vassal=hb.ini")
	if err != nil {
		return Result{Measured: fmt.Sprintf("killed after %s (last=%s); never respawned: %v", f1Secs(killedAfter), Field(killLine, "last"), err)}, nil
	}
	newPid := 0
	fmt.Sscan(Field(l, "pid"), &newPid)
	if newPid == pid {
		held = false
		notes = append(notes, "the running line names the frozen pid")
	}
	second := ""
	_, ok := Poll(ctx, func() bool {
		b, err := Get(url)
		second = b
		return err == nil && strings.HasPrefix(b, "worker ") && b != first
	})
	took := time.Since(began)
	if !ok {
		held = false
		notes = append(notes, "never served again")
	}
	if left := f1Alive(frozen); len(left) > 0 {
		held = false
		notes = append(notes, fmt.Sprintf("%d frozen processes still there: %v", len(left), left))
	}
	m := fmt.Sprintf("SIGKILLed %s after the freeze (%d processes frozen, log: missed its heartbeat, last=%s); pid %d replaced by %d",
		f1Secs(killedAfter), len(frozen), Field(killLine, "last"), pid, newPid)
	if ok {
		m += fmt.Sprintf("; serving again (%s) %s after the freeze", strings.TrimSpace(second), f1Secs(took))
	}
	if len(notes) > 0 {
		m += "; " + strings.Join(notes, "; ")
	}
	return Result{Measured: m, Held: held}, nil
}
