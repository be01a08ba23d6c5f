package vassal

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/procwait"
)

// orphanReaper reaps the processes a vassal inherits when it is PID 1 of a
// pid namespace (emperor-use-clone = pid): a worker's double-forked child
// whose parent died is re-parented to the vassal, and without a reaper its
// exit would leave a zombie until the namespace ends.
//
// It never reaps the vassal's own workers and daemons, which their waiters
// reap after reading the exit (waitExit, then cmd.Wait): every start goes
// through start, which records the pid under the same lock the reaper
// holds, and a waiter forgets its pid once reaped. The reaper looks at the
// next zombie without reaping it (WNOWAIT) and reaps it only if it is not
// ours; when one of ours is next in line it tries again shortly, after its
// waiter took it.
type orphanReaper struct {
	log  *slog.Logger
	mu   sync.Mutex
	ours map[int]bool
}

// newOrphanReaper returns a reaper when this process is PID 1, else nil (a
// nil reaper starts processes as cmd.Start does and reaps nothing).
func newOrphanReaper(log *slog.Logger) *orphanReaper {
	if os.Getpid() != 1 {
		return nil
	}
	return &orphanReaper{log: log, ours: map[int]bool{}}
}

// start starts cmd, recording its pid as one of ours.
func (o *orphanReaper) start(cmd *exec.Cmd) error {
	if o == nil {
		return cmd.Start()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	o.ours[cmd.Process.Pid] = true
	return nil
}

// reaped forgets a pid of ours once its waiter reaped it.
func (o *orphanReaper) reaped(pid int) {
	if o == nil {
		return
	}
	o.mu.Lock()
	delete(o.ours, pid)
	o.mu.Unlock()
}

// run reaps orphans on every SIGCHLD until done is closed.
func (o *orphanReaper) run(done <-chan struct{}) {
	if o == nil {
		return
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		if o.reapOnce() {
			retry.Reset(50 * time.Millisecond)
		}
		select {
		case <-done:
			retry.Stop()
			return
		case <-sigs:
		case <-retry.C:
		}
	}
}

// reapOnce reaps every exited orphan it can see and reports whether one of
// ours, not yet reaped by its waiter, hides the zombies behind it.
func (o *orphanReaper) reapOnce() (blocked bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		st, err := procwait.Wait(unix.P_ALL, 0, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT)
		if err != nil { // ECHILD: no children at all
			return false
		}
		pid := st.Pid
		if pid == 0 {
			return false // children, none exited
		}
		if o.ours[pid] {
			return true
		}
		if _, err := unix.Wait4(pid, nil, unix.WNOHANG, nil); err != nil && !errors.Is(err, unix.EINTR) {
			o.log.Warn("cannot reap orphan", "pid", pid, "err", err)
			return false
		}
		o.log.Debug("reaped an orphan", "pid", pid, "how", st.String())
	}
}
