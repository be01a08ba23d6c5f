package namespaces

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/capabilities"
)

// The init stage: when a vassal needs what SysProcAttr cannot do (mounting
// /proc, a hostname, dropping the capability bounding set, exec-as-vassal
// hooks, joining v1 cgroups before any vassal code runs),
// the Emperor starts its own binary (/proc/self/exe) in a hidden mode
// instead of the vassal. That process reads an InitConfig from an inherited
// pipe, does the work in runc's order, and execs the vassal.
//
// The handshake, over two pipes whose fds InitEnv names:
//
//	parent                                 init stage
//	starts /proc/self/exe                  reads the config pipe until EOF
//	(puts the pid in its cgroups)
//	writes InitConfig as JSON, closes  ->  decodes it; setup steps; exec
//	reads the error pipe until EOF     <-  {step, errno, message} on failure
//	                                       (the pipe is close-on-exec: EOF
//	                                       with no bytes means exec worked)

// InitEnv is the environment variable that marks the hidden init mode; its
// value is "CONFIGFD,ERRORFD". The init stage removes it before exec.
const InitEnv = "_EMPEROR_INIT"

// InitConfig is what the init stage does before exec, in this order.
type InitConfig struct {
	// Argv is the vassal's command line; Argv[0] is looked up in PATH
	// unless it holds a slash.
	Argv []string `json:"argv"`
	// KeepFds: fds below this stay open across exec; the others are
	// close-on-exec.
	KeepFds int `json:"keep_fds"`
	// PrivateMounts makes every mount private (fs namespace), so mounts
	// made by the vassal do not propagate to the host.
	PrivateMounts bool `json:"private_mounts,omitempty"`
	// MountProc mounts a fresh /proc (pid and fs namespaces), so the vassal
	// sees only its own processes.
	MountProc bool `json:"mount_proc,omitempty"`
	// Hostname is set in a uts namespace.
	Hostname string `json:"hostname,omitempty"`
	// LoopbackUp brings lo up in a new network namespace (the kernel
	// creates it down), so the vassal can reach itself on 127.0.0.1.
	LoopbackUp bool `json:"loopback_up,omitempty"`
	// Hooks are exec-as-vassal commands, run with /bin/sh -c inside the new
	// namespaces before privileges are dropped; a failure stops the spawn.
	Hooks []string `json:"hooks,omitempty"`
	// HookTimeout bounds each hook.
	HookTimeout time.Duration `json:"hook_timeout,omitempty"`
	// LimitCaps: keep only Caps (bounding, permitted, effective,
	// inheritable, ambient).
	LimitCaps bool             `json:"limit_caps,omitempty"`
	Caps      capabilities.Set `json:"caps,omitempty"`
	// Cred, when set, is who the vassal runs as (groups, gid, uid).
	Cred *Cred `json:"cred,omitempty"`
	// ParentPid is the Emperor's pid as the init stage sees it (0 in a
	// new pid namespace, where the parent is outside): if the parent
	// changed, the Emperor died and the vassal must not start.
	ParentPid int `json:"parent_pid,omitempty"`
}

// Cred is a user and its groups.
type Cred struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

// InitError is a failure of the init stage as the parent receives it.
type InitError struct {
	Step    string `json:"step"`
	Errno   int    `json:"errno,omitempty"`
	Message string `json:"message"`
}

func (e *InitError) Error() string { return "init: " + e.Step + ": " + e.Message }

// Unwrap returns the errno, so errors.Is(err, unix.EPERM) works.
func (e *InitError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return syscall.Errno(e.Errno)
}

// IsInit reports whether this process was started as an init stage. The
// Emperor's main (and a test binary's TestMain) call it first thing and
// then Init.
func IsInit() bool {
	_, ok := os.LookupEnv(InitEnv)
	return ok
}

// Init runs the init stage and execs the vassal; it never returns. Every
// failure is reported to the parent and ends the process with status 1.
func Init() {
	runtime.LockOSThread() // capabilities and prctl are per thread; exec from this one
	fds := strings.Split(os.Getenv(InitEnv), ",")
	os.Unsetenv(InitEnv)
	errFd := -1
	if len(fds) == 2 {
		errFd, _ = strconv.Atoi(fds[1])
	}
	errPipe := os.NewFile(uintptr(errFd), "init-error")
	fail := func(step string, err error) {
		ie := InitError{Step: step, Message: err.Error()}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			ie.Errno = int(errno)
		}
		b, _ := json.Marshal(ie)
		if errPipe != nil {
			errPipe.Write(b)
		} else {
			fmt.Fprintln(os.Stderr, "emperor init:", ie.Error())
		}
		os.Exit(1)
	}
	defer func() {
		if r := recover(); r != nil {
			fail("panic", fmt.Errorf("%v", r))
		}
	}()
	if len(fds) != 2 || errFd < 0 {
		fail("start", fmt.Errorf("%s=%q: want CONFIGFD,ERRORFD", InitEnv, strings.Join(fds, ",")))
	}
	cfgFd, err := strconv.Atoi(fds[0])
	if err != nil {
		fail("start", fmt.Errorf("config fd %q: %w", fds[0], err))
	}
	unix.CloseOnExec(errFd)
	cfgPipe := os.NewFile(uintptr(cfgFd), "init-config")
	var cfg InitConfig
	if err := json.NewDecoder(io.LimitReader(cfgPipe, 1<<20)).Decode(&cfg); err != nil {
		fail("read config", err)
	}
	cfgPipe.Close()
	if err := run(&cfg); err != nil {
		var se *stepError
		if errors.As(err, &se) {
			fail(se.step, se.err)
		}
		fail("init", err)
	}
}

type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }

func step(name string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step: name, err: err}
}

// run is the init stage proper, in runc's order: fds, mounts, hostname,
// loopback, hooks, bounding set, keep-caps, groups/gid/uid, capabilities,
// parent-death signal and parent check, lookup, exec.
func run(cfg *InitConfig) error {
	if len(cfg.Argv) == 0 {
		return step("argv", errors.New("empty"))
	}
	if err := unix.CloseRange(uint(max(cfg.KeepFds, 3)), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return step("close_range", os.NewSyscallError("close_range", err))
	}
	if cfg.PrivateMounts {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return step("make mounts private", os.NewSyscallError("mount", err))
		}
	}
	if cfg.MountProc {
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return step("mount /proc", os.NewSyscallError("mount", err))
		}
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return step("sethostname", os.NewSyscallError("sethostname", err))
		}
	}
	if cfg.LoopbackUp {
		if err := loopbackUp(); err != nil {
			return step("bring lo up", err)
		}
	}
	for _, h := range cfg.Hooks {
		if err := runHook(h, cfg.HookTimeout); err != nil {
			return step("exec-as-vassal "+strconv.Quote(h), err)
		}
	}
	if cfg.LimitCaps {
		if err := capabilities.DropBounding(cfg.Caps); err != nil {
			return step("drop bounding set", err)
		}
	}
	if c := cfg.Cred; c != nil {
		if cfg.LimitCaps {
			if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
				return step("keep-caps", os.NewSyscallError("prctl", err))
			}
		}
		groups := make([]int, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return step("setgroups", os.NewSyscallError("setgroups", err))
		}
		if err := syscall.Setgid(int(c.GID)); err != nil {
			return step("setgid", os.NewSyscallError("setgid", err))
		}
		if err := syscall.Setuid(int(c.UID)); err != nil {
			return step("setuid", os.NewSyscallError("setuid", err))
		}
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
			return step("keep-caps", os.NewSyscallError("prctl", err))
		}
	}
	if cfg.LimitCaps {
		if err := capabilities.Limit(cfg.Caps); err != nil {
			return step("set capabilities", err)
		}
	} else if err := capabilities.Ambient(0); err != nil {
		return step("clear ambient capabilities", err)
	}
	// A credential change clears the parent-death signal: set it again,
	// then make sure the Emperor did not die meanwhile.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return step("pdeathsig", os.NewSyscallError("prctl", err))
	}
	if cfg.ParentPid != 0 && os.Getppid() != cfg.ParentPid {
		return step("parent check", fmt.Errorf("the Emperor (pid %d) is gone", cfg.ParentPid))
	}
	path := cfg.Argv[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			return step("lookup", err)
		}
		path = p
	}
	if err := unix.Exec(path, cfg.Argv, os.Environ()); err != nil {
		return step("exec "+path, os.NewSyscallError("execve", err))
	}
	return nil
}

// loopbackUp sets IFF_UP on lo.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCGIFFLAGS", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCSIFFLAGS", err)
	}
	return nil
}

// runHook runs one hook with /bin/sh -c, its output on ours, its own
// process group killed at the timeout. It inherits fds 0-2 only.
func runHook(command string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	t := time.AfterFunc(timeout, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer t.Stop()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%w (timeout %s)", err, timeout)
	}
	return nil
}

// Stage is the parent's side of one init stage handshake.
type Stage struct {
	cfgR, cfgW *os.File // config pipe: the child reads cfgR
	errR, errW *os.File // error pipe: the child writes errW
}

// NewStage creates the two pipes. ChildFiles go into the child's fds;
// close them in the parent with CloseChildEnds right after the start.
func NewStage() (_ *Stage, retErr error) {
	s := &Stage{}
	var err error
	if s.cfgR, s.cfgW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("init config pipe: %w", err)
	}
	if s.errR, s.errW, err = os.Pipe(); err != nil {
		s.cfgR.Close()
		s.cfgW.Close()
		return nil, fmt.Errorf("init error pipe: %w", err)
	}
	return s, nil
}

// ChildFiles are the ends the init stage inherits: config, then error.
func (s *Stage) ChildFiles() (cfg, errW *os.File) { return s.cfgR, s.errW }

// Env is InitEnv=... for a child that has the config pipe at cfgFd and the
// error pipe at errFd.
func Env(cfgFd, errFd int) string {
	return InitEnv + "=" + strconv.Itoa(cfgFd) + "," + strconv.Itoa(errFd)
}

// CloseChildEnds closes the parent's copies of the child's ends.
func (s *Stage) CloseChildEnds() {
	s.cfgR.Close()
	s.errW.Close()
}

// Close releases every pipe end still open.
func (s *Stage) Close() {
	for _, f := range []*os.File{s.cfgR, s.cfgW, s.errR, s.errW} {
		f.Close()
	}
}

// Release sends cfg to the init stage and waits, until deadline, for it to
// exec (nil) or fail (an *InitError).
func (s *Stage) Release(cfg *InitConfig, deadline time.Time) error {
	err := json.NewEncoder(s.cfgW).Encode(cfg)
	s.cfgW.Close()
	if err != nil {
		return fmt.Errorf("init: send config: %w", err)
	}
	s.errR.SetReadDeadline(deadline)
	b, err := io.ReadAll(io.LimitReader(s.errR, 1<<16))
	if err != nil {
		return fmt.Errorf("init: no answer: %w", err)
	}
	if len(b) == 0 {
		return nil
	}
	var ie InitError
	if err := json.Unmarshal(b, &ie); err != nil {
		return fmt.Errorf("init: bad answer %q", b)
	}
	return &ie
}
