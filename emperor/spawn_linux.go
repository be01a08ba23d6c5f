package emperor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/internal/procwait"
	"github.com/emperor-dev/emperor/namespaces"
	"github.com/emperor-dev/emperor/protocol"
)

// process is a started vassal as the Emperor's loop holds it. Every fd is
// close-on-exec and owned by the loop.
//
// It holds no pidfd: the Emperor is its parent and the SIGCHLD reaper
// (reaper_linux.go) the only one to wait for it, so its pid stays its own
// until reaped is set, and signals go to the pid until then, never after.
type process struct {
	pid     int
	reaped  bool // waited for: the pid may belong to anyone now
	ctl     int  // the Emperor's end of the control channel
	cfg     int  // the Emperor's end of the config channel, or -1
	started stamp
	// cg is the vassal's cgroup, nil without one; the loop hands it to
	// endTree when the process is reaped.
	cg *cgroup.Group
	// killedFor says why the Emperor killed it, killCause the same as a
	// metrics label; both empty unless it did.
	killedFor, killCause string
	in                   ctlIn  // reading its control channel (ratelimit.go)
	config               []byte // the config text it is sent (nil: it reads a file)
	out                  cfgOut // its config frame on its way (config.go)
	// handed is how many of its channels' fds the spawner handed to the
	// loop over the handoff socket (ctl and cfg are -1 until the loop takes
	// them, spawntable_linux.go); 0 when the spawner shares the table.
	handed int
}

// spawnerReady is what the spawner says once its thread is set up: the
// loop's side of its own fd table and the fds the process's table must
// close, or why it shares the process's table.
type spawnerReady struct {
	h              *handoff
	closeInProcess []int
	err            error
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
func spawner(reqs <-chan spawnRequest, results chan<- spawnResult, devnull *os.File, o *Options, baseEnv []string, iso *isolator, budget *fdBudget, ready chan<- spawnerReady) {
	// Never UnlockOSThread: when this goroutine returns, its thread dies
	// with it, which is what Pdeathsig expects. Not the process's first
	// thread, whose fd table is the process's (spawntable_linux.go).
	if !lockSpawnerThread(func() { spawner(reqs, results, devnull, o, baseEnv, iso, budget, ready) }) {
		return
	}
	//
	// A child inherits the ambient capabilities of the thread that forks
	// it. An Emperor started unprivileged with CAP_SETUID and CAP_SETGID as
	// ambient capabilities (paranoid tyrant mode) must not hand them to
	// its vassals: clear them on this thread (its effective set keeps them).
	capabilities.Ambient(0)
	st, h, closeIn, err := ownTable(int(devnull.Fd()))
	ready <- spawnerReady{h: h, closeInProcess: closeIn, err: err}
	for req := range reqs {
		proc, err := startProcess(&req.spec, devnull, o, baseEnv, iso, budget, st)
		results <- spawnResult{spec: req.spec, gen: req.gen, proc: proc, err: err}
	}
}

// startProcess turns a Spec into a running process: a control socketpair
// (plus a config socketpair for inline configs), fd 0 on /dev/null, stdout
// and stderr inherited, the vassal's ends at fds 3 and 4, its own process
// group, SIGKILL when the Emperor dies, and the isolation the Spec asks
// for: a cgroup it is cloned into, and the init stage when it needs
// more than SysProcAttr can do (see needsInit). It fails with EMFILE when
// the control channel leaves less than the fd budget's reserve free
// (fdbudget.go).
func startProcess(spec *Spec, devnull *os.File, o *Options, baseEnv []string, iso *isolator, budget *fdBudget, st *spawnTable) (_ *process, retErr error) {
	if spec.OpenOnce {
		if err := spec.openOnce(); err != nil { // tyrantfile.go
			return nil, err
		}
	}
	resolveSpec(spec, o.Logger)
	if spec.MagicExec && !spec.OpenOnce {
		spec.magicExec() // openOnce did it for tyrant mode
	}
	if len(spec.Binaries) > 0 {
		b, path, err := spec.pickBinary(baseEnv)
		if err != nil {
			return nil, err
		}
		spec.Ran, spec.Argv[0] = b, path
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
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
	if st == nil { // with a table of its own, the loop checks the fd it takes
		if err := budget.check(max(ctl.Emperor, int(ctl.Vassal.Fd()))); err != nil { // fdbudget.go
			return nil, fmt.Errorf("control channel: %w", err)
		}
	}
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

	var g *cgroup.Group
	if spec.Cgroup {
		h, err := iso.hierarchy()
		if err != nil {
			return nil, err
		}
		if g, err = h.Create(spec.Key.Name, spec.CgroupLimits); err != nil {
			return nil, err
		}
		defer func() {
			if retErr != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				g.Remove(ctx)
				cancel()
			}
		}()
	}
	// v1 limits apply only once the pid is written to the v1 cgroup: the
	// init stage holds the vassal until then.
	useInit := needsInit(spec) || (g != nil && g.LimitedInV1())
	root := os.Geteuid() == 0 // the init stage may change user itself

	attr := &syscall.ProcAttr{
		Dir: spec.Dir,
		Sys: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	path, argv := spec.Argv[0], spec.Argv
	var stage *namespaces.Stage
	var initCfg *namespaces.InitConfig
	if useInit {
		stage, err = namespaces.NewStage()
		if err != nil {
			return nil, err
		}
		defer stage.Close()
		c, e := stage.ChildFiles()
		files = append(files, c, e)
		env = append(env, namespaces.Env(len(files)-2, len(files)-1))
		initCfg, attr.Sys.Credential = initConfig(spec, len(files)-2, root)
		path, argv = "/proc/self/exe", []string{spec.Argv[0] + " (emperor init)"}
	} else {
		attr.Sys.Credential = spec.Credential
	}
	attr.Env = env
	for _, f := range files {
		attr.Files = append(attr.Files, f.Fd())
	}
	if st != nil {
		// The process's stdout and stderr as they are now (a reopened log).
		for i, f := range []*os.File{o.Stdout, o.Stderr} {
			fd, err := st.fetch(f.Fd())
			if err != nil {
				return nil, fmt.Errorf("fd %d: %w", i+1, err)
			}
			defer unix.Close(fd)
			attr.Files[i+1] = uintptr(fd)
		}
	}
	spec.Namespaces.Apply(attr.Sys, spec.HostUID, spec.HostGID)

	cgfd := -1
	if g != nil {
		if cgfd, err = g.OpenFD(); err != nil {
			return nil, err
		}
		defer func() {
			if cgfd >= 0 {
				unix.Close(cgfd)
			}
		}()
	}
	inV2 := false
	if cgfd >= 0 {
		attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = true, cgfd
		inV2 = true
	}
	// syscall.StartProcess, not os.StartProcess: os would keep a pidfd
	// for the process, one more fd per vassal than the reaper needs.
	pid, err := start(path, argv, attr)
	if err != nil && inV2 && cloneIntoRefused(err) {
		// Kernels without clone3 or CLONE_INTO_CGROUP: start it, then move
		// it (the init stage, when used, holds it until then).
		attr.Sys.UseCgroupFD, attr.Sys.CgroupFD, inV2 = false, 0, false
		pid, err = start(path, argv, attr)
	}
	runtime.KeepAlive(files) // their fds were passed as numbers
	if stage != nil {
		stage.CloseChildEnds()
	}
	if err != nil {
		return nil, err
	}
	// abort undoes a start that failed after the clone: the process (the
	// init stage, holding the vassal back) is killed and reaped here, on
	// the spawner thread (the loop's reaper does not know its pid yet); the
	// deferred cleanups close the channels and remove the cgroup.
	abort := func(err error) (*process, error) {
		unix.Kill(pid, unix.SIGKILL)
		procwait.Wait(unix.P_PID, pid, unix.WEXITED)
		return nil, err
	}
	if g != nil {
		if err := g.Join(pid, inV2); err != nil {
			return abort(err)
		}
	}
	if stage != nil {
		deadline := time.Now().Add(10*time.Second + time.Duration(len(spec.Hooks))*spec.HookTimeout)
		if err := stage.Release(initCfg, deadline); err != nil {
			return abort(err)
		}
	}
	p := &process{pid: pid, ctl: ctl.Emperor, cfg: cfgFd, started: stampNow(), cg: g}
	if st != nil {
		fds := []int{ctl.Emperor}
		if cfgFd >= 0 {
			fds = append(fds, cfgFd)
		}
		if err := st.hand(fds...); err != nil {
			return abort(fmt.Errorf("control channel: %w", err))
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		p.ctl, p.cfg, p.handed = -1, -1, len(fds)
	}
	return p, nil
}

// start forks and execs, failing as os.StartProcess does.
func start(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	pid, _, err := syscall.StartProcess(path, argv, attr)
	if err != nil {
		return 0, &os.PathError{Op: "fork/exec", Path: path, Err: err}
	}
	return pid, nil
}

// initConfig is what the init stage does for spec, its fds from keepFds
// on being its own; cred is the credential SysProcAttr applies instead.
func initConfig(spec *Spec, keepFds int, root bool) (_ *namespaces.InitConfig, cred *syscall.Credential) {
	c := &namespaces.InitConfig{
		Argv:          spec.Argv,
		KeepFds:       keepFds,
		PrivateMounts: spec.Namespaces.Has(unix.CLONE_NEWNS),
		MountProc:     spec.Namespaces.Has(unix.CLONE_NEWNS) && spec.Namespaces.Has(unix.CLONE_NEWPID),
		Hostname:      spec.Hostname,
		LoopbackUp:    spec.Namespaces.Has(unix.CLONE_NEWNET),
		Hooks:         spec.Hooks,
		HookTimeout:   spec.HookTimeout,
		LimitCaps:     spec.LimitCaps,
		Caps:          spec.Caps,
	}
	if !spec.Namespaces.Has(unix.CLONE_NEWPID) {
		c.ParentPid = os.Getpid() // in a new pid namespace the parent is outside: ppid 0
	}
	sc := spec.Credential
	if sc == nil || !root {
		// An unprivileged Emperor (paranoid mode) changes user in the fork,
		// while it still holds CAP_SETUID and CAP_SETGID.
		return c, sc
	}
	// The init stage changes user itself, after dropping the bounding set
	// (which needs root) and with keep-caps.
	c.Cred = &namespaces.Cred{UID: sc.Uid, GID: sc.Gid, Groups: sc.Groups}
	if c.Cred.Groups == nil {
		c.Cred.Groups = []uint32{}
	}
	return c, nil
}

// needsInit reports whether a Spec asks for what only the init stage can
// do; everything else goes through SysProcAttr.
func needsInit(spec *Spec) bool {
	ns := spec.Namespaces
	return spec.LimitCaps || spec.Hostname != "" || len(spec.Hooks) > 0 ||
		ns.Has(unix.CLONE_NEWNS) || // private mounts, /proc for a pid namespace
		ns.Has(unix.CLONE_NEWNET) // lo up
}

// cloneIntoRefused tells a kernel refusing clone3 or CLONE_INTO_CGROUP
// from any other start failure.
func cloneIntoRefused(err error) bool {
	for _, e := range []error{unix.ENOSYS, unix.E2BIG, unix.EINVAL, unix.EBUSY, unix.EOPNOTSUPP, unix.EPERM, unix.EACCES} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// exitStatus is how a process ended.
type exitStatus struct {
	code     int         // exit code, when !signaled
	signal   unix.Signal // terminating signal, when signaled
	signaled bool
	oom      string // set by endTree when its cgroup saw an OOM kill
	lost     bool   // another waiter reaped it: nothing known (reaper_linux.go)
}

func (s exitStatus) String() string {
	if s.lost {
		return "exit status unknown (reaped by another waiter)"
	}
	out := "exit status " + strconv.Itoa(s.code)
	if s.signaled {
		out = "killed by " + unix.SignalName(s.signal)
	}
	if s.oom != "" {
		out += " (" + s.oom + ")"
	}
	return out
}

// reap collects an exited process: only the reaper calls it (on the loop,
// reaper_linux.go), and only once waitid with WNOWAIT saw it a zombie.
//
// Before the process is reaped, what is left of its process group is
// SIGKILLed: until the reap, the zombie holds its pid, so the group id it
// gave its group cannot have been reused and the group signalled is still
// the vassal's own. This ends a vassal's workers on every stop, graceful or
// not, with or without a cgroup (which endTree then empties and removes).
func reap(p *process) (st exitStatus, err error) {
	unix.Kill(-p.pid, unix.SIGKILL) // ESRCH: nothing left in the group
	ws, err := procwait.Wait(unix.P_PID, p.pid, unix.WEXITED|unix.WNOHANG)
	if err == nil && ws.Pid == 0 {
		err = fmt.Errorf("waitid %d: no exit to collect", p.pid)
	}
	if err != nil {
		return st, err
	}
	p.reaped = true
	st.code, st.signal, st.signaled = ws.Exit, ws.Signal, ws.Signaled()
	return st, nil
}

// kill signals a process by its pid, which is still its own: only the
// loop reaps, and it never signals a process it has reaped.
func kill(p *process, sig unix.Signal) error {
	if p.reaped {
		return nil
	}
	if err := unix.Kill(p.pid, sig); err != nil && err != unix.ESRCH {
		return os.NewSyscallError("kill", err)
	}
	return nil
}

// killTree SIGKILLs a vassal and the process group it leads (each vassal
// gets its own, Setpgid), so a frozen or stuck uWSGI worker does not outlive
// its master holding the vassal's sockets. Like kill it acts only before the
// vassal is reaped: until then its pid, and so its group id, cannot be
// reused, so the group signalled is the vassal's own. With a cgroup, every
// process in it dies too, including those that left the group.
func killTree(p *process) error {
	err := kill(p, unix.SIGKILL)
	if p.cg != nil {
		if cerr := p.cg.Kill(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if p.reaped {
		return err
	}
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
