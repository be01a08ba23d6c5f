package emperor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/monitor"
)

// hookResult is one exec-as-emperor command's outcome, posted to the loop.
type hookResult struct {
	key     monitor.Key
	gen     uint64
	pid     int
	command string
	err     error
	took    time.Duration
}

// startHooks runs the exec-as-emperor commands for a vassal's new process,
// one after the other in a goroutine of their own, each with /bin/sh -c
// (so $UWSGI_VASSAL_PID expands as in uWSGI), bounded by HookTimeout. The
// loop never waits for them: each result comes back as a hookResult.
// Hooks inherit fds 0-2 only (every other fd of the Emperor is
// close-on-exec), unlike uWSGI's (bug B35).
func (e *Emperor) startHooks(v *vassal, p *process) {
	if len(e.opts.ExecAsEmperor) == 0 {
		return
	}
	uid, gid := e.runsAs(v)
	config := v.ev.Key.Name
	if v.ev.Path != "" {
		config = v.ev.Path
	}
	env := append(e.baseEnv[:len(e.baseEnv):len(e.baseEnv)],
		"UWSGI_VASSAL_CONFIG="+config,
		"UWSGI_VASSAL_PID="+strconv.Itoa(p.pid),
		"UWSGI_VASSAL_UID="+strconv.Itoa(uid),
		"UWSGI_VASSAL_GID="+strconv.Itoa(gid))
	key, gen, timeout := v.ev.Key, v.gen, e.opts.HookTimeout
	commands := e.opts.ExecAsEmperor
	go func() {
		for _, c := range commands {
			start := time.Now()
			err := runShell(c, env, e.opts.Stdout, e.opts.Stderr, timeout)
			r := hookResult{key: key, gen: gen, pid: p.pid, command: c, err: err, took: time.Since(start)}
			select {
			case e.hookDone <- r:
			case <-e.done:
				return
			}
		}
	}()
}

// runsAs is the uid and gid a vassal runs as outside any user namespace.
func (e *Emperor) runsAs(v *vassal) (int, int) {
	if e.opts.Tyrant && v.owner != nil {
		return int(v.owner.UID), int(v.owner.GID)
	}
	return os.Getuid(), os.Getgid()
}

// hookFinished logs a hook's outcome and notes it for tests and tools.
func (e *Emperor) hookFinished(r hookResult) {
	v := e.vassals[r.key]
	reason := "exec-as-emperor " + strconv.Quote(r.command) + ": ok"
	if r.err != nil {
		reason = "exec-as-emperor " + strconv.Quote(r.command) + ": " + r.err.Error()
	}
	if v == nil {
		e.log.Info(reason, "vassal", r.key.Name, "pid", r.pid, "took", r.took)
		return
	}
	if r.err != nil {
		e.log.Warn(reason, e.attrs(v, "took", r.took)...)
	} else {
		e.log.Info(reason, e.attrs(v, "took", r.took)...)
	}
	if e.opts.Notify != nil {
		e.opts.Notify(Note{Key: v.ev.Key, From: v.state, To: v.state, Pid: r.pid, Reason: reason, Time: time.Now()})
	}
}

// runShell runs command with /bin/sh -c in a process group of its own,
// killed whole at the timeout.
func runShell(command string, env []string, stdout, stderr *os.File, timeout time.Duration) error {
	return runBounded(timeout, env, stdout, stderr, "/bin/sh", "-c", command)
}

// vassalStartHook is vassals-start-hook as the vassal's init stage runs
// it, first of its exec-as-vassal hooks: uWSGI runs PROGRAM NAME in the
// forked vassal before its exec (no shell: PROGRAM is a path), with
// UWSGI_VASSALS_DIR set to the vassal's config directory, and only logs a
// failure. So here: the init stage's /bin/sh runs the program with the
// name as its one argument, both quoted, and a failure prints one line on
// the vassal's stderr and the spawn goes on; the hook runs before the
// vassal's exec, so what it prepares is there when the vassal starts.
// Unlike uWSGI it runs before a tyrant vassal drops to its owner, with the
// Emperor's credentials, and emperor-hook-timeout bounds it: a hook killed
// at the timeout fails the spawn like an exec-as-vassal.
func (e *Emperor) vassalStartHook(v *vassal) []string {
	prog := e.opts.VassalsStartHook
	if prog == "" {
		return nil
	}
	cmd := shellQuote(prog) + " " + shellQuote(v.ev.Key.Name)
	if v.ev.Path != "" {
		cmd = "UWSGI_VASSALS_DIR=" + shellQuote(filepath.Dir(v.ev.Path)) + " " + cmd
	}
	return []string{cmd + " || printf '[emperor] %s start-hook returned %s\\n' " + shellQuote(v.ev.Key.Name) + ` "$?" >&2`}
}

// vassalStopHook runs vassals-stop-hook after a vassal's process died, in
// a goroutine of its own bounded by HookTimeout: PROGRAM NAME, no shell, with
// UWSGI_VASSALS_DIR (uWSGI runs it whenever it deletes an instance, and in
// Ragnarok for every vassal before stopping it, which then sends no stop
// byte, bug B2; here it runs after each death, Ragnarok's too). Run waits
// for the hooks under way before it returns.
func (e *Emperor) vassalStopHook(v *vassal) {
	prog := e.opts.VassalsStopHook
	if prog == "" {
		return
	}
	env := e.baseEnv[:len(e.baseEnv):len(e.baseEnv)]
	if v.ev.Path != "" {
		env = append(env, "UWSGI_VASSALS_DIR="+filepath.Dir(v.ev.Path))
	}
	attrs := e.attrs(v, "hook", prog)
	name, timeout := v.ev.Key.Name, e.opts.HookTimeout
	e.stopHooks.Add(1)
	go func() {
		defer e.stopHooks.Done()
		start := time.Now()
		err := runProgram(prog, name, env, e.opts.Stdout, e.opts.Stderr, timeout)
		attrs = append(attrs, "took", time.Since(start))
		if err != nil {
			e.log.Warn("vassals-stop-hook failed", append(attrs, "err", err)...)
			return
		}
		e.log.Info("vassals-stop-hook ran", attrs...)
	}()
}

// runProgram runs prog with one argument, as uWSGI's hooks exec it, in a
// process group of its own killed whole at the timeout.
func runProgram(prog, arg string, env []string, stdout, stderr *os.File, timeout time.Duration) error {
	return runBounded(timeout, env, stdout, stderr, prog, arg)
}

// runBounded runs name with args in a process group of its own, killed
// whole at the timeout.
func runBounded(timeout time.Duration, env []string, stdout, stderr *os.File, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return errors.New("killed after the hook timeout " + timeout.String())
	}
	return err
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reloadingNotice tells systemd the Emperor restarts (touch-reload): the
// READY=1 of the re-executed Emperor ends the reload. MONOTONIC_USEC is
// what systemd 253 and later want beside RELOADING=1.
func reloadingNotice() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	us := ts.Sec*1_000_000 + ts.Nsec/1000
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(us, 10) + "\nSTATUS=touch-reload: restarting the Emperor\n"
}
