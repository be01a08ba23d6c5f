package vassal

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/protocol"
)

// binaryPatch replaces the vassal with /bin/sh -c "exec COMMAND"
// (privileged-binary-patch-arg, unprivileged-binary-patch-arg). The program
// keeps the vassal's pid and gets the sockets with the systemd convention:
// fds 3 and up in config order, LISTEN_FDS, LISTEN_PID (the vassal's pid,
// which exec keeps) and LISTEN_FDNAMES. The Emperor's channels follow the
// sockets, and UWSGI_EMPEROR_FD (and UWSGI_EMPEROR_FD_CONFIG) name their new
// numbers: the program owns the rest of the protocol. The vassal sends
// Spawned (1) before the exec. It only returns on failure.
func (r *runner) binaryPatch(command string, socks []*listener) error {
	var srcs []int
	for _, l := range socks {
		fd, err := rawFD(l.file)
		if err != nil {
			return fmt.Errorf("binary patch: %w", err)
		}
		srcs = append(srcs, fd)
	}
	nsock := len(srcs)
	env := workerEnv(r.o.Env, r.settings.Env, socks, "")
	env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()))
	if r.em != nil {
		for i, f := range []*os.File{r.em.ctl, r.em.cfg} {
			if f == nil {
				continue
			}
			fd, err := rawFD(f)
			if err != nil {
				return fmt.Errorf("binary patch: %w", err)
			}
			name := protocol.EnvFD
			if i == 1 {
				name = protocol.EnvConfigFD
			}
			env = append(env, name+"="+strconv.Itoa(3+len(srcs)))
			srcs = append(srcs, fd)
		}
	}
	// Move every fd out of the way first (close-on-exec copies above
	// every target), then onto its target without close-on-exec: a
	// source may sit on another one's target.
	floor := 3 + len(srcs)
	tmp := make([]int, len(srcs))
	for i, fd := range srcs {
		t, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, floor)
		if err != nil {
			return fmt.Errorf("binary patch: %w", os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err))
		}
		tmp[i] = t
	}
	r.log.Info("replacing the vassal with the binary patch", "command", command, "sockets", nsock)
	r.send(protocol.Spawned)
	for i, t := range tmp {
		if err := unix.Dup3(t, 3+i, 0); err != nil {
			return fmt.Errorf("binary patch: %w", os.NewSyscallError("dup3", err))
		}
		_ = unix.SetNonblock(3+i, false)
	}
	err := syscall.Exec("/bin/sh", []string{"/bin/sh", "-c", "exec " + strings.TrimSpace(command)}, env)
	return fmt.Errorf("binary patch: exec /bin/sh: %w", err)
}

// rawFD returns the descriptor of f without changing its blocking mode.
func rawFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd int
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return 0, err
	}
	return fd, nil
}
