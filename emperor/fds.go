package emperor

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The Emperor's fds of each process (its control channel and, with an
// inline config, its config channel) are listed here and nowhere else:
// registered with the poller under a token by watch, reported ready
// through fdReady, released by closeProcess. A process has no pidfd: its
// exit comes from the SIGCHLD reaper (reaper_linux.go).

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
	cfgFd               // writable: room for the rest of a config frame (config.go)
)

// fdRef says whose fd a poller token is. It is stale when the vassal left
// the table or runs another process.
type fdRef struct {
	v    *vassal
	p    *process
	kind fdKind
}

// watch registers a new process's control channel with the poller.
func (e *Emperor) watch(v *vassal, p *process) error {
	e.nextTok++
	v.ctlTok = e.nextTok
	e.fds[v.ctlTok] = fdRef{v: v, p: p, kind: ctlFd}
	if err := e.poll.add(p.ctl, v.ctlTok); err != nil {
		return fmt.Errorf("control channel: %w", err)
	}
	return nil
}

// fdReady handles one readiness report from the poller.
func (e *Emperor) fdReady(tok uint64) {
	ref, ok := e.fds[tok]
	if !ok || e.vassals[ref.v.ev.Key] != ref.v || ref.v.proc != ref.p {
		return // stale: the fd belongs to a process we already let go
	}
	v, p := ref.v, ref.p
	switch ref.kind {
	case ctlFd:
		e.readControl(v, p, tok)
	case cfgFd:
		e.flushConfig(v, p)
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
// failed spawn. Its exit comes from the reaper, as any other's.
func (e *Emperor) unwatched(v *vassal, p *process, err error) {
	e.log.Error("cannot watch the vassal's fds: SIGKILL, counted as a failed spawn", e.attrs(v, "err", err)...)
	p.killedFor, p.killCause = "cannot watch its fds: "+err.Error(), "spawn_failed"
	if v.timer == nil {
		e.armKill(v)
	}
	if err := killTree(p); err != nil {
		e.log.Error("kill failed", e.attrs(v, "err", err)...)
	}
}

// closeProcess releases the Emperor's fds of a process and forgets its
// poller tokens (closing an fd also removes it from the epoll set); a
// vassal waiting for an fd may try again.
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
	e.fdsFreed() // fdbudget.go
}
