package emperor

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/protocol"
)

// process is a started vassal as the Emperor's loop holds it. Every fd is
// close-on-exec and owned by the loop.
type process struct {
	pid     int
	pidfd   int // non-blocking; waits and signals go through it (never a bare pid)
	ctl     int // the Emperor's end of the control channel
	cfg     int // the Emperor's end of the config channel, or -1
	started time.Time
}

// spawnRequest asks the spawner thread for one process.
type spawnRequest struct {
	spec Spec
	gen  uint64
}

// spawnResult is the spawner's answer, delivered to the loop.
type spawnResult struct {
	spec Spec
	gen  uint64
	proc *process
	err  error
}

// spawner runs every clone on one goroutine locked to its OS thread, for the
// life of the Emperor. Pdeathsig belongs to the thread that forked a child:
// if that thread ever exited, every vassal would be SIGKILLed with it
// (STYLE rule 6). The goroutine returns only when reqs is closed, at the end
// of Run, when no vassal is left.
func spawner(reqs <-chan spawnRequest, results chan<- spawnResult, devnull *os.File, o *Options, baseEnv []string) {
	runtime.LockOSThread()
	// Never UnlockOSThread: when this goroutine returns, its thread dies
	// with it, which is what Pdeathsig expects.
	for req := range reqs {
		proc, err := startProcess(&req.spec, devnull, o, baseEnv)
		results <- spawnResult{spec: req.spec, gen: req.gen, proc: proc, err: err}
	}
}

// startProcess turns a Spec into a running process: a control socketpair
// (plus a config socketpair for inline configs), fd 0 on /dev/null, stdout
// and stderr inherited, the vassal's ends at fds 3 and 4, its own process
// group, SIGKILL when the Emperor dies, and a pidfd.
func startProcess(spec *Spec, devnull *os.File, o *Options, baseEnv []string) (_ *process, retErr error) {
	ctl, err := protocol.NewPair("emperor-control")
	if err != nil {
		return nil, fmt.Errorf("control channel: %w", err)
	}
	defer ctl.Vassal.Close() // the child has its copy once started
	defer func() {
		if retErr != nil {
			unix.Close(ctl.Emperor)
		}
	}()
	files := []*os.File{devnull, o.Stdout, o.Stderr, ctl.Vassal}
	env := append(baseEnv[:len(baseEnv):len(baseEnv)], protocol.EnvFD+"=3")
	cfgFd := -1
	if spec.Config != nil {
		cfg, err := protocol.NewPair("emperor-config")
		if err != nil {
			return nil, fmt.Errorf("config channel: %w", err)
		}
		defer cfg.Vassal.Close()
		defer func() {
			if retErr != nil {
				unix.Close(cfg.Emperor)
			}
		}()
		files = append(files, cfg.Vassal)
		env = append(env, protocol.EnvConfigFD+"=4")
		cfgFd = cfg.Emperor
	}
	pidfd := -1
	attr := &os.ProcAttr{
		Dir:   spec.Dir,
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
			PidFD:     &pidfd,
		},
	}
	attr.Sys.Credential = spec.Credential
	spec.Namespaces.Apply(attr.Sys, spec.HostUID, spec.HostGID)
	p, err := os.StartProcess(spec.Argv[0], spec.Argv, attr)
	if err != nil {
		return nil, err
	}
	pid := p.Pid
	p.Release() // we keep our own pidfd; os keeps a duplicate we do not need
	if pidfd < 0 {
		// Kernels without CLONE_PIDFD: open one now. The child cannot have
		// been reaped (only we wait for it), so the pid is still ours.
		pidfd, err = unix.PidfdOpen(pid, 0)
		if err != nil {
			return nil, os.NewSyscallError("pidfd_open", err)
		}
	}
	if err := unix.SetNonblock(pidfd, true); err != nil {
		unix.Close(pidfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return &process{pid: pid, pidfd: pidfd, ctl: ctl.Emperor, cfg: cfgFd, started: time.Now()}, nil
}

// exitStatus is how a process ended.
type exitStatus struct {
	code     int         // exit code, when !signaled
	signal   unix.Signal // terminating signal, when signaled
	signaled bool
}

func (s exitStatus) String() string {
	if s.signaled {
		return "killed by " + unix.SignalName(s.signal)
	}
	return "exit status " + strconv.Itoa(s.code)
}

// reap collects an exited process through its pidfd without blocking. ok is
// false when the process is still running (EAGAIN on a non-blocking pidfd).
func reap(pidfd int) (st exitStatus, ok bool, err error) {
	var info unix.Siginfo
	for {
		err = unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EAGAIN {
		return st, false, nil
	}
	if err != nil {
		return st, false, os.NewSyscallError("waitid", err)
	}
	// siginfo_t for SIGCHLD: si_pid at 16, si_uid at 20, si_status at 24.
	raw := (*[32]byte)(unsafe.Pointer(&info))
	pid := *(*int32)(unsafe.Pointer(&raw[16]))
	status := *(*int32)(unsafe.Pointer(&raw[24]))
	if pid == 0 {
		return st, false, nil
	}
	const cldExited = 1 // CLD_EXITED; CLD_KILLED and CLD_DUMPED carry a signal
	switch info.Code {
	case cldExited:
		st.code = int(status)
	default: // CLD_KILLED, CLD_DUMPED
		st.signaled = true
		st.signal = unix.Signal(status)
	}
	return st, true, nil
}

// kill signals a process through its pidfd: a pid can be recycled, a pidfd
// cannot.
func kill(pidfd int, sig unix.Signal) error {
	if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil && err != unix.ESRCH {
		return os.NewSyscallError("pidfd_send_signal", err)
	}
	return nil
}

// killTree SIGKILLs a vassal and the process group it leads (each vassal
// gets its own, Setpgid), so a frozen or stuck uWSGI worker does not outlive
// its master holding the vassal's sockets. It must only be called before the
// vassal is reaped: until then its pid, and so its group id, cannot be
// reused, so the group signalled is the vassal's own. (Children that left
// the group escape it; cgroups will catch those.)
func killTree(p *process) error {
	err := kill(p.pidfd, unix.SIGKILL)
	if gerr := unix.Kill(-p.pid, unix.SIGKILL); gerr != nil && gerr != unix.ESRCH && err == nil {
		err = os.NewSyscallError("kill", gerr)
	}
	return err
}

// closeOnExecFrom marks every fd from minFd up close-on-exec, so a vassal
// inherits only what startProcess passes: fds the Emperor itself inherited
// without the flag (from a shell, a test runner, a careless parent) would
// otherwise leak into every vassal. Go opens its own fds close-on-exec.
func closeOnExecFrom(minFd int) error {
	err := unix.CloseRange(uint(minFd), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Kernels before 5.11: walk /proc/self/fd.
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil && fd >= minFd && fd != int(d.Fd()) {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
