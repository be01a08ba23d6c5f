package emperor

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/procwait"
)

// The reaper: how exits reach the loop without a thread or an fd per
// vassal, and without taking anyone else's children.
//
// The Emperor is every vassal's parent, and a child's pid cannot be reused
// until its parent reaps it. So the loop signals a vassal by its pid while
// it has not reaped it, and it alone reaps, only pids it spawned:
//
//   - SIGCHLD (signal.Notify, a buffer of one: notifications coalesce)
//     wakes the loop, which calls reapChildren;
//   - reapChildren peeks at the next zombie, whoever's it is, with
//     waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT), which reaps nothing. A vassal
//     of ours is reaped by its pid (reap, spawn_linux.go, first SIGKILLing
//     what is left of its process group) and its exit handled (exited,
//     handlers.go); then it peeks again;
//   - a zombie that is not ours (the child of an exec-as-emperor hook or a
//     stop hook, which os/exec reaps in its own goroutine; the guardian;
//     the spawner's own abort) may stay first in line for a while: then
//     each of ours is checked once by its pid (waitid(P_PID, WNOWAIT)), and
//     the reaper stops until the next SIGCHLD. It never waits for a pid it
//     did not spawn (no wait(-1)), and never spins on a zombie it leaves.
//
// A process is tracked from its spawn result on (track); one that exited
// before the loop tracked it sent its SIGCHLD too early, so track has the
// loop check that pid once after the event.

// child is a process the reaper waits for; v is nil for one no vassal holds
// (it is reaped and dropped).
type child struct {
	v *vassal
	p *process
}

// track registers a started process with the reaper.
func (e *Emperor) track(v *vassal, p *process) {
	e.children[p.pid] = child{v: v, p: p}
	e.checkPids = append(e.checkPids, p.pid)
}

// checkTracked checks each process tracked during the last event once: it
// may have exited before it was tracked.
func (e *Emperor) checkTracked() {
	for _, pid := range e.checkPids {
		if _, ok := e.children[pid]; ok {
			e.checkChild(pid)
		}
	}
	e.checkPids = e.checkPids[:0]
}

// reapChildren reaps every vassal process that exited, on SIGCHLD.
func (e *Emperor) reapChildren() {
	for {
		st, err := procwait.Wait(unix.P_ALL, 0, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT)
		if err != nil {
			if errors.Is(err, unix.ECHILD) && len(e.children) > 0 {
				// No child at all, yet we track some: another waiter in
				// this process took them (a wait(-1) somewhere).
				e.scanChildren()
			} else if !errors.Is(err, unix.ECHILD) {
				e.log.Error("reaper: waitid", "err", err)
			}
			return
		}
		if st.Pid == 0 {
			return // children, none exited
		}
		if _, ours := e.children[st.Pid]; !ours {
			e.log.Debug("reaper: the next zombie is not a vassal's; checking each vassal's pid", "pid", st.Pid)
			e.scanChildren()
			return
		}
		e.reapChild(st.Pid)
	}
}

// scanChildren checks each tracked process once by its pid.
func (e *Emperor) scanChildren() {
	for pid := range e.children {
		e.checkChild(pid)
	}
}

// checkChild reaps pid if it exited, without waiting.
func (e *Emperor) checkChild(pid int) {
	st, err := procwait.Wait(unix.P_PID, pid, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT)
	switch {
	case errors.Is(err, unix.ECHILD):
		e.lost(pid, err)
	case err != nil:
		e.log.Error("reaper: waitid", "pid", pid, "err", err)
	case st.Pid == pid:
		e.reapChild(pid)
	}
}

// reapChild reaps a tracked process that waitid saw exit, and hands the
// exit of a vassal's current process to the loop's handler.
func (e *Emperor) reapChild(pid int) {
	c := e.children[pid]
	st, err := reap(c.p)
	if err != nil {
		e.lost(pid, err)
		return
	}
	delete(e.children, pid)
	e.deliver(c, st)
}

// lost gives up on a tracked process that cannot be waited for: another
// waiter reaped it. Its status is unknown, and its pid no longer its own:
// it is never signalled again.
func (e *Emperor) lost(pid int, err error) {
	c := e.children[pid]
	delete(e.children, pid)
	c.p.reaped = true
	attrs := []any{"pid", pid, "err", err}
	if c.v != nil {
		attrs = e.attrs(c.v, "err", err)
	}
	e.log.Error("reaper: a vassal's process was reaped by someone else; its exit status is lost", attrs...)
	e.deliver(c, exitStatus{lost: true})
}

// deliver hands a reaped process's exit to its vassal, if it is still the
// vassal's current process.
func (e *Emperor) deliver(c child, st exitStatus) {
	v := c.v
	if v == nil || e.vassals[v.ev.Key] != v || v.proc != c.p {
		e.log.Debug("reaped a process no vassal holds", "pid", c.p.pid, "status", st.String())
		return
	}
	e.exited(v, st)
}
