package vassal

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/internal/procwait"
)

// Attached daemons: attach-daemon runs a command next to the workers, in
// its own process group, respawned with the workers' backoff when it dies
// and stopped with the vassal (SIGTERM, SIGKILL after worker-reload-mercy).
// smart-attach-daemon is for a command that daemonizes and writes its pid
// to a pidfile: the vassal checks that pid every smartPollEvery, runs the
// command when it is not alive, and sends SIGTERM to it when it stops (it is
// not the vassal's child, so the vassal does not wait for it). Daemons are
// read from the config at start only: a reload keeps them running.

// smartPollEvery is how often a smart daemon's pid is checked.
const smartPollEvery = time.Second

// DaemonSpec is one attach-daemon or smart-attach-daemon option.
type DaemonSpec struct {
	// Command runs with /bin/sh -c.
	Command string
	// Pidfile is where a smart daemon writes its pid; "" for attach-daemon.
	Pidfile string
}

// daemon is a running attached daemon; owned by the loop.
type daemon struct {
	idx      int
	spec     DaemonSpec
	cmd      *exec.Cmd // the running command (for smart: the starter), or nil
	pid      int
	started  time.Time
	backoff  time.Duration
	respawns int
	seq      int
	mercy    *time.Timer
}

// daemonExited: a daemon (or a smart daemon's starter) exited.
type daemonExited struct {
	idx, pid int
	exit     procwait.Status
	reap     chan struct{}
}

// daemonDue: start (or, for smart, check) daemon idx.
type daemonDue struct{ idx, seq int }

// daemonMercy: stopping daemons had worker-reload-mercy to exit.
type daemonMercy struct{}

func (daemonExited) isEvent() {}
func (daemonDue) isEvent()    {}
func (daemonMercy) isEvent()  {}

// daemonCmd is the exec.Cmd of a daemon: its own process group, SIGKILL
// when the vassal dies (Pdeathsig, through the spawner thread), stdin on
// /dev/null, the workers' output.
func (r *runner) daemonCmd(spec DaemonSpec) *exec.Cmd {
	return &exec.Cmd{
		Path:        "/bin/sh",
		Args:        []string{"/bin/sh", "-c", spec.Command},
		Env:         workerEnv(r.o.Env, r.settings.Env, nil, ""),
		Stdout:      r.o.Stdout,
		Stderr:      r.o.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
		WaitDelay:   time.Second,
	}
}

// startDaemons starts every daemon of s.
func (r *runner) startDaemons(s Settings) {
	for i, spec := range s.Daemons {
		d := &daemon{idx: i, spec: spec}
		r.daemons = append(r.daemons, d)
		r.daemonDue(daemonDue{idx: i})
	}
}

// daemonDue starts a daemon, or checks a smart one.
func (r *runner) daemonDue(ev daemonDue) {
	if r.stopping || ev.idx >= len(r.daemons) {
		return
	}
	d := r.daemons[ev.idx]
	if ev.seq != d.seq || d.cmd != nil {
		return
	}
	if d.spec.Pidfile != "" {
		d.seq++
		defer r.after(smartPollEvery, daemonDue{idx: d.idx, seq: d.seq})
		if pid := readPid(d.spec.Pidfile); pid > 0 && processAlive(pid) {
			d.pid = pid
			return
		}
		if d.pid != 0 {
			r.log.Warn("smart daemon gone, starting it again", "daemon", d.spec.Command, "pid", d.pid)
			d.respawns++
		}
		d.pid = 0
	}
	cmd := r.daemonCmd(d.spec)
	reply := make(chan spawnReply, 1)
	r.spawns <- spawnRequest{prepared: cmd, reply: reply}
	if res := <-reply; res.err != nil {
		r.log.Error("cannot start daemon", "daemon", d.spec.Command, "err", res.err)
		if d.spec.Pidfile == "" {
			r.scheduleDaemon(d, 0)
		}
		return
	}
	d.cmd, d.started = cmd, time.Now()
	if d.spec.Pidfile == "" {
		d.pid = cmd.Process.Pid
	}
	r.log.Info("daemon started", "daemon", d.spec.Command, "pid", cmd.Process.Pid, "smart", d.spec.Pidfile != "")
	idx, pid, smart := d.idx, cmd.Process.Pid, d.spec.Pidfile != ""
	r.waiters.Add(1)
	go func() {
		defer r.waiters.Done()
		exit, _ := waitExit(pid, !smart)
		reap := make(chan struct{})
		r.post(daemonExited{idx: idx, pid: pid, exit: exit, reap: reap})
		select {
		case <-reap:
		case <-r.done:
		}
		_ = cmd.Wait()
		r.orphans.reaped(pid)
	}()
}

// scheduleDaemon respawns a dead daemon after its backoff.
func (r *runner) scheduleDaemon(d *daemon, lived time.Duration) {
	d.backoff = nextBackoff(d.backoff, lived)
	d.seq++
	d.respawns++
	r.log.Info("respawning daemon", "daemon", d.spec.Command, "in", d.backoff)
	r.after(d.backoff, daemonDue{idx: d.idx, seq: d.seq})
}

// daemonExited handles the exit of a daemon or a smart daemon's starter.
func (r *runner) daemonExited(ev daemonExited) {
	defer close(ev.reap)
	d := r.daemons[ev.idx]
	if d.cmd == nil || d.cmd.Process.Pid != ev.pid {
		return
	}
	d.cmd = nil
	switch {
	case d.spec.Pidfile != "":
		// The starter of a smart daemon exits once it has daemonized;
		// the poll checks the pidfile.
		r.log.Info("smart daemon starter exited", "daemon", d.spec.Command, "how", ev.exit.String())
	case r.stopping:
		d.pid = 0
		r.log.Info("daemon stopped", "daemon", d.spec.Command, "pid", ev.pid, "how", ev.exit.String())
	default:
		d.pid = 0
		lived := time.Since(d.started)
		r.log.Warn("daemon died", "daemon", d.spec.Command, "pid", ev.pid, "how", ev.exit.String(), "lived", lived.Round(time.Millisecond))
		r.scheduleDaemon(d, lived)
	}
}

// stopDaemons sends SIGTERM to every daemon, and arms the SIGKILL.
func (r *runner) stopDaemons(mercy time.Duration) {
	sig := syscall.SIGTERM
	if r.brutal || mercy == 0 {
		sig = syscall.SIGKILL
	}
	for _, d := range r.daemons {
		d.seq++ // no more respawns or polls
		if d.cmd != nil {
			_ = signalGroup(d.cmd.Process.Pid, sig)
		}
		if d.spec.Pidfile == "" {
			continue
		}
		if pid := readPid(d.spec.Pidfile); pid > 0 && processAlive(pid) {
			r.log.Info("stopping smart daemon", "daemon", d.spec.Command, "pid", pid)
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				r.log.Error("cannot signal smart daemon", "daemon", d.spec.Command, "pid", pid, "err", err)
			}
		}
	}
	if r.daemonsRunning() {
		r.after(mercy, daemonMercy{})
	}
}

// daemonMercyExpired kills daemons that ignored SIGTERM.
func (r *runner) daemonMercyExpired() {
	for _, d := range r.daemons {
		if d.cmd != nil {
			r.log.Warn("daemon ignored SIGTERM for worker-reload-mercy, killing it", "daemon", d.spec.Command, "pid", d.cmd.Process.Pid)
			_ = signalGroup(d.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
}

// daemonsRunning reports whether a daemon process of ours still runs.
func (r *runner) daemonsRunning() bool {
	for _, d := range r.daemons {
		if d.cmd != nil {
			return true
		}
	}
	return false
}

// daemonStats describes the attached daemons.
func (r *runner) daemonStats() []statsDaemon {
	var out []statsDaemon
	for _, d := range r.daemons {
		out = append(out, statsDaemon{Cmd: d.spec.Command, Pid: d.pid, Respawns: d.respawns, Smart: d.spec.Pidfile != "", Pidfile: d.spec.Pidfile})
	}
	return out
}

// readPid reads a pid from a pidfile, or returns 0.
func readPid(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0
	}
	return pid
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	return !strings.Contains(string(readStat(pid)), ") Z ")
}

// readStat returns /proc/PID/stat, or nil.
func readStat(pid int) []byte {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return data
}

// parseDaemon parses a smart-attach-daemon value: "PIDFILE CMD".
func parseSmartDaemon(v string) (DaemonSpec, error) {
	v = strings.TrimSpace(v)
	pidfile, cmd, ok := strings.Cut(v, " ")
	if !ok || strings.TrimSpace(cmd) == "" {
		return DaemonSpec{}, fmt.Errorf("%q is not PIDFILE COMMAND", v)
	}
	return DaemonSpec{Command: strings.TrimSpace(cmd), Pidfile: pidfile}, nil
}
