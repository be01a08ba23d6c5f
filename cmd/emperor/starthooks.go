package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/config"
)

// startHooks are uWSGI's hooks around an instance's start, run by the
// Emperor around its own: per phase, the hook-* actions, then the exec-*
// shell commands, each phase's list in config order.
//
//	pre-jail   hook-pre-jail, exec-pre-jail: first, not again on a restart
//	post-jail  hook-post-jail, exec-post-jail: never (no jail, as uWSGI without one)
//	in-jail    hook-in-jail, exec-in-jail
//	as root    hook-as-root, exec-as-root: only when the Emperor runs as root
//	as user    hook-as-user, exec-as-user
//	atexit     hook-as-user-atexit, exec-as-user-atexit: at exit and before a restart
//
// A failure in any phase but atexit stops the Emperor's start, as uWSGI
// exits; at exit it is logged.
type startHooks struct {
	hooks    map[string][]string // phase -> action:args
	execs    map[string][]string // phase -> shell command
	postJail []string            // for the line saying they do not run
	asRoot   []string
}

// hookActions are the hook actions this Emperor runs, with uWSGI's names.
var hookActions = []string{"exec", "safeexec", "mkdir", "chdir", "cd", "putenv", "chmod", "chown", "chown2", "sticky",
	"create", "creat", "write", "writen", "append", "appendn", "writefifo", "unlink", "print", "log"}

func (h *startHooks) options() []config.Setting {
	if h.hooks == nil {
		h.hooks, h.execs = map[string][]string{}, map[string][]string{}
	}
	var s []config.Setting
	for _, ph := range []struct{ suffix, phase, when string }{
		{"pre-jail", "pre-jail", "before the Emperor starts (not again on a restart)"},
		{"post-jail", "post-jail", "after jailing: never, the Emperor runs in no jail"},
		{"in-jail", "in-jail", "as the Emperor starts"},
		{"as-root", "as root", "as the Emperor starts, when it runs as root"},
		{"as-user", "as user", "as the Emperor starts, after the as-root ones"},
		{"as-user-atexit", "atexit", "when the Emperor exits or restarts"},
	} {
		s = append(s,
			config.Setting{Name: "hook-" + ph.suffix, Help: "hook ACTION:ARGS run " + ph.when, Set: h.addHook(ph.phase)},
			config.Setting{Name: "exec-" + ph.suffix, Help: "shell command run " + ph.when, Set: h.addExec(ph.phase)})
	}
	return s
}

func (h *startHooks) addHook(phase string) func(string) error {
	return func(v string) error {
		v = strings.TrimSpace(v)
		action, _, ok := strings.Cut(v, ":")
		if !ok {
			return &config.Error{Err: fmt.Errorf("%q is not ACTION:ARGS", v), Hint: "for example exec:CMD, mkdir:DIR, write:FILE TEXT"}
		}
		if !slices.Contains(hookActions, strings.TrimPrefix(action, "!")) {
			return &config.Error{Err: fmt.Errorf("hook action %q is not supported by this Emperor", action),
				Hint: "supported: " + strings.Join(hookActions, ", ")}
		}
		h.hooks[phase] = append(h.hooks[phase], v)
		h.note(phase, v)
		return nil
	}
}

func (h *startHooks) addExec(phase string) func(string) error {
	return func(v string) error {
		v = strings.TrimSpace(v)
		if v == "" {
			return errors.New("needs a value")
		}
		h.execs[phase] = append(h.execs[phase], v)
		h.note(phase, v)
		return nil
	}
}

func (h *startHooks) note(phase, v string) {
	switch phase {
	case "post-jail":
		h.postJail = append(h.postJail, v)
	case "as root":
		h.asRoot = append(h.asRoot, v)
	}
}

// run runs one phase's hooks then its commands, each bounded by timeout.
// The first failure ends the phase with an error naming the hook, except
// at atexit, where every hook runs and the failures are joined.
func (h *startHooks) run(log *slog.Logger, phase string, timeout time.Duration) error {
	var errs []error
	for _, v := range h.hooks[phase] {
		action, args, _ := strings.Cut(v, ":")
		shown := v
		if private := strings.HasPrefix(action, "!"); private {
			action, shown = action[1:], "--- PRIVATE HOOK ---"
		}
		log.Info("running hook", "phase", phase, "hook", shown)
		if err := runHookAction(log, action, args, timeout); err != nil {
			err = fmt.Errorf("hook %q (%s): %w", shown, phase, err)
			if phase != "atexit" {
				return err
			}
			errs = append(errs, err)
		}
	}
	for _, c := range h.execs[phase] {
		log.Info("running command", "phase", phase, "command", c, "uid", os.Getuid(), "gid", os.Getgid())
		if err := runCommand(c, timeout); err != nil {
			err = fmt.Errorf("command %q (%s): %w", c, phase, err)
			if phase != "atexit" {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runCommand runs a shell command with the Emperor's environment and
// output, in a process group killed whole at the timeout.
func runCommand(command string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("killed after emperor-hook-timeout %s", timeout)
	}
	return err
}

// runHookAction does one hook action as uWSGI's does.
func runHookAction(log *slog.Logger, action, arg string, timeout time.Duration) error {
	// fileAndText splits "FILE TEXT" at the first space.
	fileAndText := func() (string, string, error) {
		f, t, ok := strings.Cut(arg, " ")
		if !ok {
			return "", "", fmt.Errorf("%s wants FILE TEXT", action)
		}
		return f, t, nil
	}
	writeFile := func(flags int, newline bool) error {
		f, t, err := fileAndText()
		if action == "appendn" && err != nil {
			f, t, err = arg, "", nil
		}
		if err != nil {
			return err
		}
		if newline {
			t += "\n"
		}
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|flags, 0o666)
		if err != nil {
			return err
		}
		return writeClose(fh, t)
	}
	switch action {
	case "exec":
		return runCommand(arg, timeout)
	case "safeexec":
		if err := runCommand(arg, timeout); err != nil {
			log.Warn("safeexec hook failed; going on", "command", arg, "err", err)
		}
		return nil
	case "mkdir":
		return os.Mkdir(arg, 0o777)
	case "chdir", "cd":
		return os.Chdir(arg)
	case "putenv":
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("putenv wants KEY=VALUE")
		}
		return os.Setenv(k, v)
	case "chmod":
		f, m, err := fileAndText()
		if err != nil {
			return err
		}
		mode, err := strconv.ParseUint(m, 8, 32)
		if err != nil {
			return fmt.Errorf("chmod: %q is not an octal mode", m)
		}
		return syscall.Chmod(f, uint32(mode))
	case "sticky":
		fi, err := os.Stat(arg)
		if err != nil {
			return err
		}
		return os.Chmod(arg, fi.Mode()|os.ModeSticky)
	case "chown", "chown2":
		f, ids, err := fileAndText()
		u, g, ok := strings.Cut(ids, " ")
		if err != nil || !ok {
			return fmt.Errorf("%s wants FILE USER GROUP", action)
		}
		uid, gid, err := hookIDs(action, u, g)
		if err != nil {
			return err
		}
		return os.Chown(f, uid, gid)
	case "create", "creat":
		fh, err := os.OpenFile(arg, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
		if err != nil {
			return err
		}
		return fh.Close()
	case "write":
		return writeFile(os.O_TRUNC, false)
	case "writen":
		return writeFile(os.O_TRUNC, true)
	case "append":
		return writeFile(os.O_APPEND, false)
	case "appendn":
		return writeFile(os.O_APPEND, true)
	case "writefifo":
		f, t, err := fileAndText()
		if err != nil {
			return err
		}
		fh, err := os.OpenFile(f, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.ENODEV) {
			return nil // no reader: uWSGI goes on
		}
		if err != nil {
			return err
		}
		return writeClose(fh, t)
	case "unlink":
		return os.Remove(arg)
	case "print", "log":
		log.Info(arg, "hook", action)
		return nil
	}
	return fmt.Errorf("hook action %q is not supported by this Emperor", action)
}

// hookIDs reads chown's user and group names or chown2's numbers.
func hookIDs(action, u, g string) (int, int, error) {
	if action == "chown2" {
		uid, err1 := strconv.Atoi(u)
		gid, err2 := strconv.Atoi(g)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("chown2 wants a numeric uid and gid, not %q %q", u, g)
		}
		return uid, gid, nil
	}
	pw, err := user.Lookup(u)
	if err != nil {
		return 0, 0, fmt.Errorf("chown: %w", err)
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, 0, fmt.Errorf("chown: %w", err)
	}
	uid, _ := strconv.Atoi(pw.Uid)
	gid, _ := strconv.Atoi(gr.Gid)
	return uid, gid, nil
}

// writeClose writes t to fh and closes it, returning the first error.
func writeClose(fh *os.File, t string) error {
	_, err := fh.WriteString(t)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}
