package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/internal/usergroup"
)

// Across the re-execution that drops privileges, the new image learns
// that it is the dropped Emperor (dropEnv, "uid:gid") and which inherited
// fds hold its locks (flockEnv, in the order of the flock options). Both
// are removed from the environment before anything reads it for vassals.
const (
	dropEnv  = "_EMPEROR_DROPPED"
	flockEnv = "_EMPEROR_FLOCK_FDS"
)

// lockFiles takes the fcntl lock of every flock file, as uWSGI does: the
// file must exist and open read-write; flock exits when another process
// holds the lock, flock-wait waits for it. After the re-execution the
// locks are already held, on inherited fds.
func (p *processSettings) lockFiles(log *slog.Logger) ([]*os.File, error) {
	inherited := os.Getenv(flockEnv)
	os.Unsetenv(flockEnv)
	if inherited != "" {
		var held []*os.File
		for i, s := range strings.Split(inherited, ",") {
			fd, err := strconv.Atoi(s)
			if err != nil || i >= len(p.flocks) {
				return nil, fmt.Errorf("%s=%q: not the lock fds of this config", flockEnv, inherited)
			}
			unix.CloseOnExec(fd)
			_, path, _ := strings.Cut(p.flocks[i], ":")
			held = append(held, os.NewFile(uintptr(fd), path))
		}
		return held, nil
	}
	var held []*os.File
	for _, fl := range p.flocks {
		mode, path, _ := strings.Cut(fl, ":")
		opt := map[string]string{"exit": "flock", "wait": "flock-wait"}[mode]
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			closeAll(held)
			return nil, fmt.Errorf("%s: %w", opt, err)
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
		cmd := unix.F_SETLK
		if mode == "wait" {
			cmd = unix.F_SETLKW
			log.Info("taking the lock, waiting while another holds it", "flock-wait", path)
		}
		if err := unix.FcntlFlock(f.Fd(), cmd, &lk); err != nil {
			defer f.Close()
			closeAll(held)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
				who := unix.Flock_t{Type: unix.F_WRLCK}
				holder := ""
				if unix.FcntlFlock(f.Fd(), unix.F_GETLK, &who) == nil && who.Pid > 0 {
					holder = fmt.Sprintf(" (pid %d)", who.Pid)
				}
				return nil, fmt.Errorf("%s %s: locked by another instance%s", opt, path, holder)
			}
			return nil, fmt.Errorf("%s %s: %w", opt, path, os.NewSyscallError("fcntl", err))
		}
		log.Info("lock taken", opt, path)
		held = append(held, f)
	}
	return held, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// dropPrivileges applies uid, gid and cap as uWSGI's uwsgi_as_root does
// for an Emperor (only when started as root; an unprivileged Emperor logs
// that they do not apply): supplementary groups (the user's, as
// initgroups finds them), gid, uid, keeping the cap list.
//
// Capabilities are per thread and every Go program has several, so the
// Emperor does not drop in place: on one locked thread it sets keep-caps,
// changes groups, gid and uid (Go applies those to every thread), raises
// the kept capabilities as permitted, effective, inheritable and ambient,
// and re-executes itself. The new image starts as the user with exactly
// the kept capabilities on every thread (the spawner thread then clears
// its ambient set, so vassals never inherit them). Lock files stay held
// across the exec on inherited fds. With emperor-tyrant the Emperor
// refuses to go on unless it kept setuid and setgid.
func (p *processSettings) dropPrivileges(log *slog.Logger, held []*os.File, tyrant bool) error {
	marker := os.Getenv(dropEnv)
	os.Unsetenv(dropEnv)
	if p.uid == "" && p.gid == "" {
		if p.caps != "" {
			log.Warn("option ignored", "option", "cap", "why", "cap applies when uid drops root; without uid the Emperor keeps what it was started with")
		}
		return nil
	}
	uid, gid := -1, -1
	if p.uid != "" {
		u, primary, err := usergroup.User(p.uid)
		if err != nil {
			return fmt.Errorf("uid: %w", err)
		}
		uid, gid = u, primary
	}
	if p.gid != "" {
		g, err := usergroup.Group(p.gid)
		if err != nil {
			return fmt.Errorf("gid: %w", err)
		}
		gid = g
	}
	var keep capabilities.Set
	if p.caps != "" {
		c, err := capabilities.Parse(p.caps)
		if err != nil {
			return fmt.Errorf("cap: %w", err)
		}
		keep = c
	}
	if marker != "" {
		if marker != fmt.Sprintf("%d:%d", uid, gid) || (uid >= 0 && os.Getuid() != uid) || (gid >= 0 && os.Getgid() != gid) {
			return fmt.Errorf("uid/gid: the re-executed Emperor runs as %d:%d, want %s", os.Getuid(), os.Getgid(), marker)
		}
		eff := effectiveCaps()
		log.Info("privileges dropped", "uid", os.Getuid(), "gid", os.Getgid(), "caps", eff.String())
		if tyrant && (!eff.Has(unix.CAP_SETUID) || !eff.Has(unix.CAP_SETGID)) {
			return tyrantNeedsCaps(uid, eff)
		}
		return nil
	}
	if os.Getuid() != 0 {
		if (uid < 0 || uid == os.Getuid()) && (gid < 0 || gid == os.Getgid()) {
			return nil // already that user
		}
		log.Warn("uid/gid ignored: the Emperor was not started as root, so it cannot change user (as in uWSGI)",
			"uid", p.uid, "gid", p.gid, "running-as", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()))
		return nil
	}
	if tyrant && uid > 0 && (!keep.Has(unix.CAP_SETUID) || !keep.Has(unix.CAP_SETGID)) {
		return tyrantNeedsCaps(uid, keep)
	}
	groups := []int{} // uid without gid: no supplementary group is kept from root
	if gid >= 0 {
		groups = []int{gid}
		if uid >= 0 {
			if gs, err := usergroup.Groups(uid); err == nil {
				groups = appendMissing(groups, gs)
			}
		}
	}
	if uid < 0 {
		// gid alone: no uid change, so no capability is lost and Go
		// changes the groups of every thread in place.
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("gid %d: %w", gid, os.NewSyscallError("setgroups", err))
		}
		if err := syscall.Setgid(gid); err != nil {
			return fmt.Errorf("gid %d: %w", gid, os.NewSyscallError("setgid", err))
		}
		log.Info("group dropped", "gid", gid)
		return nil
	}
	return reexecAs(uid, gid, groups, keep, held, p.listeners)
}

// reexecAs changes user on this locked thread, keeping caps, and
// re-executes the Emperor; it returns only on failure.
func reexecAs(uid, gid int, groups []int, keep capabilities.Set, held []*os.File, listeners []earlyListener) error {
	runtime.LockOSThread() // never unlocked: the thread execs or the Emperor exits
	if keep != 0 {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("cap: %w", os.NewSyscallError("prctl(PR_SET_KEEPCAPS)", err))
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("uid %d: %w", uid, os.NewSyscallError("setgroups", err))
	}
	if gid >= 0 {
		if err := syscall.Setgid(gid); err != nil {
			return fmt.Errorf("gid %d: %w", gid, os.NewSyscallError("setgid", err))
		}
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("uid %d: %w", uid, os.NewSyscallError("setuid", err))
	}
	if keep != 0 {
		if err := capabilities.Hold(keep); err != nil {
			return fmt.Errorf("cap %s: %w", keep, err)
		}
		if err := capabilities.Ambient(keep); err != nil {
			return fmt.Errorf("cap %s: %w", keep, err)
		}
	}
	env := append(os.Environ(), fmt.Sprintf("%s=%d:%d", dropEnv, uid, gid))
	if len(held) > 0 {
		fds := make([]string, len(held))
		for i, f := range held {
			fd := int(f.Fd())
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
				return fmt.Errorf("flock: %w", os.NewSyscallError("fcntl", err))
			}
			fds[i] = strconv.Itoa(fd)
		}
		env = append(env, flockEnv+"="+strings.Join(fds, ","))
	}
	env, err := handOver(listeners, env) // listeners.go
	if err != nil {
		return err
	}
	err = syscall.Exec("/proc/self/exe", os.Args, env)
	return fmt.Errorf("uid %d: re-executing the Emperor as the user: %w", uid, os.NewSyscallError("execve", err))
}

func tyrantNeedsCaps(uid int, have capabilities.Set) error {
	return fmt.Errorf("emperor-tyrant: with uid %d the Emperor keeps capabilities %s, without setuid and setgid it cannot run vassals as their owners: add cap = setuid,setgid (the paranoid tyrant)", uid, have)
}

// effectiveCaps are the calling thread's effective capabilities.
func effectiveCaps() capabilities.Set {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var d [2]unix.CapUserData
	if unix.Capget(&hdr, &d[0]) != nil {
		return 0
	}
	return capabilities.Set(d[0].Effective) | capabilities.Set(d[1].Effective)<<32
}

func appendMissing(to, from []int) []int {
	for _, g := range from {
		found := false
		for _, h := range to {
			found = found || h == g
		}
		if !found {
			to = append(to, g)
		}
	}
	return to
}
