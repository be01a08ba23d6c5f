package emperor

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/monitor"
)

// The Emperor's fds of each process (its control channel, its config
// channel and its pidfd) are listed here and nowhere else: registered with
// the poller under a token by watch, reported ready through fdReady,
// released by closeProcess.

// fdRegistry is the part of the poller the loop uses: registering an fd
// under a token, and re-arming it after a report.
type fdRegistry interface {
	add(fd int, tok uint64) error
	rearm(fd int, tok uint64) error
	writable(fd int, tok uint64, added bool) error
}

type fdKind uint8

const (
	ctlFd fdKind = iota // readable: bytes from the vassal (control.go)
	pidFd               // readable: the process exited
	cfgFd               // writable: room for the rest of a config frame (config.go)
)

// fdRef says whose fd a poller token is. It is stale when the vassal left
// the table or runs another process.
type fdRef struct {
	v    *vassal
	p    *process
	kind fdKind
}

// watch registers a new process's control channel and pidfd with the
// poller.
func (e *Emperor) watch(v *vassal, p *process) error {
	e.nextTok++
	v.ctlTok = e.nextTok
	e.fds[v.ctlTok] = fdRef{v: v, p: p, kind: ctlFd}
	e.nextTok++
	v.pidTok = e.nextTok
	e.fds[v.pidTok] = fdRef{v: v, p: p, kind: pidFd}
	if err := e.poll.add(p.ctl, v.ctlTok); err != nil {
		return fmt.Errorf("control channel: %w", err)
	}
	if err := e.poll.add(p.pidfd, v.pidTok); err != nil {
		return fmt.Errorf("pidfd: %w", err)
	}
	return nil
}

// fdReady handles one readiness report from the poller.
func (e *Emperor) fdReady(tok uint64) {
	ref, ok := e.fds[tok]
	if !ok || e.vassals[ref.v.key] != ref.v || ref.v.proc != ref.p {
		return // stale: the fd belongs to a process we already let go
	}
	v, p := ref.v, ref.p
	switch ref.kind {
	case ctlFd:
		e.readControl(v, p, tok)
	case pidFd:
		e.pidfdReady(v, p, tok)
	case cfgFd:
		e.flushConfig(v, p)
	}
}

// pidfdReady collects an exit, or re-arms the pidfd when it was a false
// alarm.
func (e *Emperor) pidfdReady(v *vassal, p *process, tok uint64) {
	st, exited, err := reap(p)
	switch {
	case err != nil:
		e.log.Error("waitid failed", e.attrs(v, "err", err)...)
	case exited:
		e.exited(v, st)
	default:
		e.rearm(v, p, p.pidfd, tok)
	}
}

// rearm re-enables one of p's fds after its report was handled. When the
// kernel refuses, nobody would see the process's bytes or exit any more,
// so it is killed as a failed spawn (unwatched).
func (e *Emperor) rearm(v *vassal, p *process, fd int, tok uint64) {
	if err := e.poll.rearm(fd, tok); err != nil {
		if v.state == Running {
			e.transition(v, Cursed, None, "cannot watch its fds: "+err.Error())
		}
		e.unwatched(v, p, err)
	}
}

// unwatched kills a process the poller cannot watch, counting it as a
// failed spawn, and collects its exit through a waiter of its own: one
// goroutine that blocks in poll(2) on a duplicate of the pidfd, which costs a
// thread only in this rare case.
func (e *Emperor) unwatched(v *vassal, p *process, err error) {
	e.log.Error("cannot watch the vassal's fds: SIGKILL, counted as a failed spawn", e.attrs(v, "err", err)...)
	p.killedFor, p.killCause = "cannot watch its fds: "+err.Error(), "spawn_failed"
	if v.timer == nil {
		e.armKill(v)
	}
	if err := killTree(p); err != nil {
		e.log.Error("kill failed", e.attrs(v, "err", err)...)
	}
	dup, derr := unix.FcntlInt(uintptr(p.pidfd), unix.F_DUPFD_CLOEXEC, 0)
	if derr != nil {
		e.log.Error("cannot wait for the unwatched vassal; it stays a zombie until the Emperor exits", e.attrs(v, "err", derr)...)
		return
	}
	key := v.key
	go func() {
		defer unix.Close(dup)
		fds := []unix.PollFd{{Fd: int32(dup), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				break
			}
		}
		select {
		case e.unwatchedExit <- unwatchedExit{key: key, p: p}:
		case <-e.done:
		}
	}()
}

// unwatchedExit reports that an unwatched process's pidfd became readable.
type unwatchedExit struct {
	key monitor.Key
	p   *process
}

// collectUnwatched reaps an unwatched process whose exit its waiter saw.
func (e *Emperor) collectUnwatched(u unwatchedExit) {
	v := e.vassals[u.key]
	if v == nil || v.proc != u.p || u.p.pidfd < 0 {
		return // already collected another way
	}
	st, exited, err := reap(u.p)
	if err != nil || !exited {
		e.log.Error("waitid failed on an unwatched vassal", e.attrs(v, "err", err, "exited", exited)...)
		return
	}
	e.exited(v, st)
}

// closeProcess releases the Emperor's fds of a process and forgets its
// poller tokens (closing an fd also removes it from the epoll set).
func (e *Emperor) closeProcess(p *process, toks ...uint64) {
	for _, tok := range append(toks, p.out.tok) {
		if ref, ok := e.fds[tok]; ok && ref.p == p {
			delete(e.fds, tok)
		}
	}
	if p.in.resume != nil {
		p.in.resume.Stop()
		p.in.resume = nil
	}
	if p.ctl >= 0 {
		unix.Close(p.ctl)
		p.ctl = -1
	}
	if p.cfg >= 0 {
		unix.Close(p.cfg)
		p.cfg = -1
	}
	unix.Close(p.pidfd)
	p.pidfd = -1
}
