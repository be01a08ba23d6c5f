package vassal

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/internal/usergroup"
)

// onSpawner runs f on the spawner thread, the one that forks every worker:
// capabilities are per thread, and a child gets its forking thread's.
func (r *runner) onSpawner(f func() error) error {
	reply := make(chan spawnReply, 1)
	r.spawns <- spawnRequest{run: f, reply: reply}
	return (<-reply).err
}

// dropPrivileges applies gid, uid and cap to the whole vassal: the
// supplementary groups become just gid, then gid, then uid (Go applies
// both to every thread). With caps, the spawner thread keeps them across
// the uid change (PR_SET_KEEPCAPS) and holds them as permitted, effective
// and inheritable, so workers can get them as ambient capabilities.
func (r *runner) dropPrivileges(s Settings) error {
	if s.UID == "" && s.GID == "" {
		if len(s.Caps) > 0 {
			r.log.Warn("cap without uid: the vassal keeps its own capabilities")
		}
		return nil
	}
	uid, gid := -1, -1
	if s.UID != "" {
		u, primary, err := usergroup.User(s.UID)
		if err != nil {
			return fmt.Errorf("uid: %w", err)
		}
		uid, gid = u, primary
	}
	if s.GID != "" {
		g, err := usergroup.Group(s.GID)
		if err != nil {
			return fmt.Errorf("gid: %w", err)
		}
		gid = g
	}
	if len(s.Caps) > 0 && uid >= 0 {
		if err := r.onSpawner(func() error {
			return os.NewSyscallError("prctl PR_SET_KEEPCAPS", unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0))
		}); err != nil {
			return fmt.Errorf("cap: %w", err)
		}
	}
	if gid >= 0 {
		if err := syscall.Setgroups([]int{gid}); err != nil {
			return fmt.Errorf("gid %d: %w", gid, os.NewSyscallError("setgroups", err))
		}
		if err := syscall.Setgid(gid); err != nil {
			return fmt.Errorf("gid %d: %w", gid, os.NewSyscallError("setgid", err))
		}
	}
	if uid >= 0 {
		if err := syscall.Setuid(uid); err != nil {
			return fmt.Errorf("uid %d: %w", uid, os.NewSyscallError("setuid", err))
		}
	}
	if len(s.Caps) > 0 {
		var set capabilities.Set
		for _, c := range s.Caps {
			set |= 1 << c
		}
		if err := r.onSpawner(func() error { return capabilities.Hold(set) }); err != nil {
			return fmt.Errorf("cap: %w", err)
		}
		r.ambientCaps = s.Caps
	}
	r.log.Info("privileges dropped", "uid", os.Getuid(), "gid", os.Getgid(), "caps", len(s.Caps))
	return nil
}
