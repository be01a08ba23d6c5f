package main

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// crashLoopConfig is a uWSGI vassal that dies at once, before it could ever
// become loyal: its socket's directory does not exist, so bind fails and
// uWSGI exits 1 after logging crashLoopMark.
const crashLoopConfig = "[uwsgi]\nsocket = /nonexistent-emperor-bench/loop.sock\nmaster = true\nprocesses = 1\n"

const crashLoopMark = "bind(): No such file or directory"

// measureCrashLoop runs the Emperor on one vassal that crash-loops and
// measures the Emperor's CPU (CPU-time clock, per 30 s) over the idle
// window, after a 5 s warm-up; the note says how many times the vassal was
// started in the window, which is each Emperor's respawn policy at work.
func measureCrashLoop(s *settings, k *emperorKind, rows *rowSet, work, vassalExe string) {
	dir := mkdir(work, k.name+"-crashloop")
	if err := os.WriteFile(filepath.Join(dir, "loop.ini"), []byte(crashLoopConfig), 0o644); err != nil {
		rows.note("crashloop", "%v", err)
		return
	}
	r, err := startEmperor(k, dir, filepath.Join(s.logDir, k.name+"-crashloop.log"), vassalExe)
	if err != nil {
		rows.note("crashloop", "start: %v", err)
		return
	}
	defer func() {
		r.shutdown(syscall.SIGTERM, eventTimeout)
		reportLog(r)
	}()
	progress(k.name, "one vassal crash-looping; load average %s", loadavg())
	time.Sleep(5 * time.Second) // warm-up: the first deaths and respawns
	off := r.logSize()
	clk0, err := cpuClock(r.pid)
	if err != nil {
		rows.note("crashloop", "%v", err)
		return
	}
	t0 := time.Now()
	time.Sleep(s.idle)
	clk1, err := cpuClock(r.pid)
	wall := time.Since(t0)
	if err != nil {
		rows.note("crashloop", "%v", err)
		return
	}
	rows.add("crashloop", ms(clk1-clk0)*float64(30*time.Second)/float64(wall))
	starts := -1
	if log, err := os.ReadFile(r.logPath); err == nil && int64(len(log)) >= off {
		starts = bytes.Count(log[off:], []byte(crashLoopMark))
	}
	rows.note("crashloop", "the vassal started %d times in the %v window", starts, wall.Round(time.Second))
	progress(k.name, "crash loop: %v CPU clock over %v, %d starts", clk1-clk0, wall.Round(time.Millisecond), starts)
}
