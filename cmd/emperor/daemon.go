package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
)

// daemonEnv marks the processes daemonize starts: "1" the intermediate,
// "2" the daemon; an "n" after it says fd 3 is daemonize2's pipe back to
// the first process. restartEnv marks a touch-reload restart.
const (
	daemonEnv = "_EMPEROR_DAEMON"
	// detachedEnv tells the image that drops privileges that fd 3 is
	// daemonize2's pipe to the first process.
	detachedEnv = "_EMPEROR_DETACHED_FD"
	restartEnv  = "_EMPEROR_RESTARTED"
)

// detach is daemonize: as uWSGI's double fork, the first process starts an
// intermediate in a new session (setsid) with stdin on /dev/null, which
// starts the daemon and exits, so the daemon leads no session and never
// gets a controlling terminal. Go cannot fork, so each step re-executes
// this binary with the same argv, which reads the same config again.
//
// With daemonize, fds 1 and 2 of the daemon are daemonize's file from the
// start and the first process exits 0 once the daemon is started, as in
// uWSGI. With daemonize2 the daemon keeps the terminal until its start
// hooks and pidfiles are done (afterDrop), then moves its log to the file
// and lets the first process exit 0; if it fails before, the first exits 1
// (uWSGI's daemonize2 never detaches a standalone Emperor).
//
// Under systemd (NOTIFY_SOCKET) or another Emperor (UWSGI_EMPEROR_FD) the
// Emperor does not detach, so its manager keeps tracking it: daemonize's
// file is only its log, as uWSGI does under an Emperor.
//
// detach returns done in the first process and in the intermediate, with
// their exit status.
//
// dropped says this is the image that re-executed itself to drop
// privileges (process.go): it is already where the image before it was,
// the daemon included, and keeps daemonize2's pipe on the same fd.
func (p *lifecycleSettings) detach(stderr io.Writer, dropped bool) (code int, done bool) {
	stage := os.Getenv(daemonEnv)
	os.Unsetenv(daemonEnv)
	if _, ok := os.LookupEnv(restartEnv); ok {
		p.restarted = true
		os.Unsetenv(restartEnv)
	}
	if dropped {
		if os.Getenv(detachedEnv) != "" {
			p.daemon, p.detached = true, os.NewFile(3, "daemonize2")
		} else {
			p.daemon = p.daemonize != ""
		}
		os.Unsetenv(detachedEnv)
		return 0, false
	}
	switch stage {
	case "1", "1n":
		return p.startDaemon(stage == "1n", stderr), true
	case "2", "2n":
		p.daemon = true
		if stage == "2n" {
			p.detached = os.NewFile(3, "daemonize2")
			// For the image that drops privileges, if there is one;
			// run removes it once the drop is done.
			os.Setenv(detachedEnv, "3")
		}
		return 0, false
	}
	if p.restarted || (p.daemonize == "" && p.daemonize2 == "") {
		return 0, false
	}
	switch {
	case os.Getenv("NOTIFY_SOCKET") != "":
		p.foreground = "NOTIFY_SOCKET is set: systemd tracks this process (use Type=notify without daemonize)"
		return 0, false
	case os.Getenv("UWSGI_EMPEROR_FD") != "":
		p.foreground = "the Emperor is itself a vassal (UWSGI_EMPEROR_FD)"
		return 0, false
	}
	return p.startIntermediate(stderr), true
}

// startIntermediate is the first process's part: it starts the
// intermediate and, with daemonize2, waits for the daemon's word.
func (p *lifecycleSettings) startIntermediate(stderr io.Writer) int {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Fprintln(stderr, "emperor: daemonize:", err)
		return 1
	}
	defer devnull.Close()
	stdout, out, stage := os.Stdout, os.Stderr, "1"
	if p.daemonize != "" {
		if out, err = openLogTarget(p.daemonize); err != nil {
			fmt.Fprintln(stderr, "emperor: daemonize:", err)
			return 1
		}
		defer out.Close()
		stdout = out
	}
	var r, w *os.File
	if p.daemonize == "" {
		if r, w, err = os.Pipe(); err != nil {
			fmt.Fprintln(stderr, "emperor: daemonize2:", err)
			return 1
		}
		defer r.Close()
		stage = "1n"
	}
	cmd := p.self(stage, devnull, stdout, out, w)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Run()
	if w != nil {
		w.Close()
	}
	if err != nil {
		fmt.Fprintln(stderr, "emperor: daemonize:", err)
		return 1
	}
	if r == nil {
		return 0
	}
	b := make([]byte, 1)
	if n, _ := r.Read(b); n != 1 {
		fmt.Fprintln(stderr, "emperor: daemonize2: the daemon ended before it was up")
		return 1
	}
	return 0
}

// startDaemon is the intermediate's part: start the daemon, then exit.
func (p *lifecycleSettings) startDaemon(notify bool, stderr io.Writer) int {
	stage := "2"
	var w *os.File
	if notify {
		stage, w = "2n", os.NewFile(3, "daemonize2")
	}
	if err := p.self(stage, os.Stdin, os.Stdout, os.Stderr, w).Start(); err != nil {
		fmt.Fprintln(stderr, "emperor: daemonize:", err)
		return 1
	}
	return 0
}

// self is this binary with this process's argv, marked as stage.
func (p *lifecycleSettings) self(stage string, stdin, stdout, stderr, notify *os.File) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), daemonEnv+"="+stage)
	if p.restarted {
		cmd.Env = append(cmd.Env, restartEnv+"=1")
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if notify != nil {
		cmd.ExtraFiles = []*os.File{notify}
	}
	return cmd
}

// detached2 is daemonize2's step in the daemon, once the start hooks and
// pidfiles are done: the log moves to the file and the first process is
// told it may exit. In the foreground the file is only the log.
func (p *lifecycleSettings) detached2(log *slog.Logger) error {
	if p.daemonize2 == "" || p.daemonize != "" {
		return nil
	}
	l := &logFile{target: p.daemonize2}
	if p.restarted && !p.logReopen {
		p.log = l // still on fds 1 and 2
		return nil
	}
	log.Info("daemonize2: logging to its file from now on", "file", p.daemonize2)
	if err := l.open(); err != nil {
		return fmt.Errorf("daemonize2 %s: %w", p.daemonize2, err)
	}
	p.log = l
	if p.detached != nil {
		p.detached.Write([]byte("k"))
		p.detached.Close()
		p.detached = nil
	}
	return nil
}
