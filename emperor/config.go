package emperor

import (
	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/protocol"
)

// cfgOut is the config frame on its way to a process: written as far as
// the socket takes it, the rest when the poller says there is room. A
// frame is never interleaved with another: a request while one is on its
// way is answered, with the config current then, once it is through.
type cfgOut struct {
	frame []byte // what is left to write
	tok   uint64 // the poller token of the writable report, 0 before the first
	fails int    // write errors, logged once
	again bool   // another request came meanwhile
	added bool   // the config fd is registered with the poller
}

// pushConfig sends the vassal its current config text, once after spawn and
// in answer to every byte 2. It is never pushed after a reload byte (that
// made uWSGI 2.0 vassals run one version behind, bug B9).
func (e *Emperor) pushConfig(v *vassal) {
	p := v.proc
	if p == nil || p.cfg < 0 || p.config == nil {
		return
	}
	if len(p.out.frame) > 0 {
		p.out.again = true
		return
	}
	frame, err := protocol.AppendFrame(nil, p.config, e.opts.ExtendedFrames)
	if err != nil {
		e.log.Error("cannot send config", e.attrs(v, "err", err)...)
		return
	}
	p.out.frame = frame
	e.flushConfig(v, p)
}

// flushConfig writes what the socket takes of the frame on its way, and
// asks the poller for room for the rest.
func (e *Emperor) flushConfig(v *vassal, p *process) {
	for len(p.out.frame) > 0 && p.cfg >= 0 {
		n, err := unix.Write(p.cfg, p.out.frame)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if p.out.tok == 0 {
				e.nextTok++
				p.out.tok = e.nextTok
				e.fds[p.out.tok] = fdRef{v: v, p: p, kind: cfgFd}
			}
			if err := e.poll.writable(p.cfg, p.out.tok, p.out.added); err != nil {
				e.log.Error("cannot wait to send the rest of the config: dropping it", e.attrs(v, "err", err)...)
				p.out.frame = nil
				return
			}
			p.out.added = true
			return
		case err != nil:
			if p.out.fails++; p.out.fails == 1 {
				e.log.Error("cannot send config", e.attrs(v, "err", err)...)
			}
			p.out.frame, p.out.again = nil, false
			return
		}
		p.out.frame = p.out.frame[n:]
	}
	if p.out.again {
		p.out.again = false
		e.pushConfig(v)
	}
}
