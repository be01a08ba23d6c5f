package vassal

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// capNames maps the capability names cap accepts (as uWSGI's cap option
// and capabilities(7) spell them, without CAP_) to their numbers.
var capNames = map[string]uintptr{
	"chown": unix.CAP_CHOWN, "dac_override": unix.CAP_DAC_OVERRIDE, "dac_read_search": unix.CAP_DAC_READ_SEARCH,
	"fowner": unix.CAP_FOWNER, "fsetid": unix.CAP_FSETID, "kill": unix.CAP_KILL, "setgid": unix.CAP_SETGID,
	"setuid": unix.CAP_SETUID, "setpcap": unix.CAP_SETPCAP, "linux_immutable": unix.CAP_LINUX_IMMUTABLE,
	"net_bind_service": unix.CAP_NET_BIND_SERVICE, "net_broadcast": unix.CAP_NET_BROADCAST,
	"net_admin": unix.CAP_NET_ADMIN, "net_raw": unix.CAP_NET_RAW, "ipc_lock": unix.CAP_IPC_LOCK,
	"ipc_owner": unix.CAP_IPC_OWNER, "sys_module": unix.CAP_SYS_MODULE, "sys_rawio": unix.CAP_SYS_RAWIO,
	"sys_chroot": unix.CAP_SYS_CHROOT, "sys_ptrace": unix.CAP_SYS_PTRACE, "sys_pacct": unix.CAP_SYS_PACCT,
	"sys_admin": unix.CAP_SYS_ADMIN, "sys_boot": unix.CAP_SYS_BOOT, "sys_nice": unix.CAP_SYS_NICE,
	"sys_resource": unix.CAP_SYS_RESOURCE, "sys_time": unix.CAP_SYS_TIME, "sys_tty_config": unix.CAP_SYS_TTY_CONFIG,
	"mknod": unix.CAP_MKNOD, "lease": unix.CAP_LEASE, "audit_write": unix.CAP_AUDIT_WRITE,
	"audit_control": unix.CAP_AUDIT_CONTROL, "setfcap": unix.CAP_SETFCAP, "mac_override": unix.CAP_MAC_OVERRIDE,
	"mac_admin": unix.CAP_MAC_ADMIN, "syslog": unix.CAP_SYSLOG, "wake_alarm": unix.CAP_WAKE_ALARM,
	"block_suspend": unix.CAP_BLOCK_SUSPEND, "audit_read": unix.CAP_AUDIT_READ, "perfmon": unix.CAP_PERFMON,
	"bpf": unix.CAP_BPF, "checkpoint_restore": unix.CAP_CHECKPOINT_RESTORE,
}

// parseCaps parses a cap value: a comma list of names.
func parseCaps(v string) ([]uintptr, error) {
	var caps []uintptr
	for _, name := range strings.Split(v, ",") {
		name = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(strings.ToUpper(name)), "CAP_"))
		if name == "" {
			continue
		}
		c, ok := capNames[name]
		if !ok {
			return nil, fmt.Errorf("unknown capability %q", name)
		}
		caps = append(caps, c)
	}
	return caps, nil
}

// lookupUID resolves a uid option (a name or a number).
func lookupUID(v string) (uid, primaryGID int, err error) {
	if n, err := strconv.Atoi(v); err == nil {
		return n, -1, nil
	}
	u, err := user.Lookup(v)
	if err != nil {
		return 0, 0, err
	}
	uid, _ = strconv.Atoi(u.Uid)
	primaryGID, _ = strconv.Atoi(u.Gid)
	return uid, primaryGID, nil
}

// lookupGID resolves a gid option (a name or a number).
func lookupGID(v string) (int, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(v)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

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
		u, primary, err := lookupUID(s.UID)
		if err != nil {
			return fmt.Errorf("uid %s: %w", s.UID, err)
		}
		uid, gid = u, primary
	}
	if s.GID != "" {
		g, err := lookupGID(s.GID)
		if err != nil {
			return fmt.Errorf("gid %s: %w", s.GID, err)
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
		if err := r.onSpawner(func() error { return setCaps(s.Caps) }); err != nil {
			return fmt.Errorf("cap: %w", err)
		}
		r.ambientCaps = s.Caps
	}
	r.log.Info("privileges dropped", "uid", os.Getuid(), "gid", os.Getgid(), "caps", len(s.Caps))
	return nil
}

// setCaps makes caps the calling thread's permitted, effective and
// inheritable sets.
func setCaps(caps []uintptr) error {
	var data [2]unix.CapUserData
	for _, c := range caps {
		data[c/32].Permitted |= 1 << (c % 32)
	}
	for i := range data {
		data[i].Effective = data[i].Permitted
		data[i].Inheritable = data[i].Permitted
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	return os.NewSyscallError("capset", unix.Capset(&hdr, &data[0]))
}
