package vassal

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Probe timing. A generation of workers is probed every probeInterval until
// it is ready; after probePatience without success the vassal logs it and
// keeps trying at a growing interval, up to probeMaxInterval.
const (
	probeInterval    = 20 * time.Millisecond
	probePatience    = 30 * time.Second
	probeMaxInterval = 2 * time.Second
	// probeGrace is how long a worker must have been running before a
	// mere TCP connect counts as readiness, when the vassal cannot see
	// which process accepted the connection.
	probeGrace = 100 * time.Millisecond
	// probeAcceptWait bounds the wait for a worker to accept a probe
	// connection.
	probeAcceptWait = 500 * time.Millisecond
	// probeTimeout bounds the connect and the HTTP exchange of a probe.
	probeTimeout = 5 * time.Second
)

// A prober checks whether a generation of workers serves its socket.
//
// Readiness rule. A generation is ready when a probe shows one of its
// workers serving:
//
//   - http-socket: an HTTP GET / sent to the socket gets an HTTP response
//     (any status);
//   - socket: a worker accepts a TCP connection on it;
//   - no socket at all: a worker has run for probeGrace.
//
// Every worker of every generation shares the same listening socket, so any
// of them may pick up a probe. For TCP sockets on Linux the prober finds
// which process accepted the probe connection (its socket inode in
// /proc/net/tcp, then the worker holding that inode) and reports it, so
// that during a reload the loop can tell a new worker's answer from an old
// one's. Where that is not possible (unix sockets, or a process the vassal
// cannot see), a probe is unattributed: for http-socket any HTTP response
// counts, and for socket a successful connect counts once the generation
// has been running for probeGrace.
type prober struct {
	kind      SocketKind // 0: no socket
	network   string     // "tcp" or "unix"
	addr      string     // what to dial
	notBefore time.Time  // unattributed raw probes count only after this
	// leaders returns the pids of every running worker (all generations);
	// it must be safe to call from the probe goroutine.
	leaders func() []int
	log     *slog.Logger
}

// probeOutcome is the result of one probe.
type probeOutcome struct {
	// answered: the socket answered as the readiness rule requires.
	answered bool
	// acceptor is the pid of the worker whose process group accepted the
	// probe, or 0 when unknown.
	acceptor int
	// err says why the probe did not answer.
	err error
}

// newProber picks the socket to probe: the first http-socket, otherwise
// the first socket.
func newProber(sockets []*listener, started time.Time, leaders func() []int, log *slog.Logger) *prober {
	p := &prober{notBefore: started.Add(probeGrace), leaders: leaders, log: log}
	for _, want := range []SocketKind{HTTPSocket, RawSocket} {
		for _, l := range sockets {
			if l.spec.Kind == want {
				p.kind, p.network, p.addr = want, l.network, l.dial
				return p
			}
		}
	}
	return p
}

// run probes until ctx is canceled, passing every outcome to report. The
// loop that owns the generation decides what an outcome means and cancels
// ctx when it has seen enough.
func (p *prober) run(ctx context.Context, report func(probeOutcome)) {
	start := time.Now()
	interval := probeInterval
	warned := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		o := p.attempt(ctx)
		if ctx.Err() != nil {
			return
		}
		report(o)
		if !warned && time.Since(start) >= probePatience {
			warned = true
			p.log.Warn("workers are not ready yet; still probing, less often",
				"socket", p.describe(), "after", probePatience, "last_error", errString(o.err))
		}
		if warned {
			interval = min(interval*2, probeMaxInterval)
		}
		timer.Reset(interval)
	}
}

// describe names the probed socket for logs.
func (p *prober) describe() string {
	if p.kind == 0 {
		return "none"
	}
	return p.kind.String() + " " + p.addr
}

// attempt runs one probe.
func (p *prober) attempt(ctx context.Context) probeOutcome {
	if p.kind == 0 {
		if time.Now().Before(p.notBefore) {
			return probeOutcome{err: fmt.Errorf("running for less than %v", probeGrace)}
		}
		return probeOutcome{answered: true}
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, p.network, p.addr)
	if err != nil {
		return probeOutcome{err: err}
	}
	defer conn.Close()

	tcp, _ := conn.(*net.TCPConn)
	acc := acceptance{}
	if tcp != nil {
		acc = p.waitAccepted(ctx, tcp)
	}
	if p.kind == RawSocket {
		switch {
		case acc.pid != 0:
			return probeOutcome{answered: true, acceptor: acc.pid}
		case acc.observable && !acc.accepted:
			return probeOutcome{err: fmt.Errorf("no worker accepted the connection within %v", probeAcceptWait)}
		case !acc.accepted && time.Now().Before(p.notBefore):
			return probeOutcome{err: fmt.Errorf("connected, but workers run for less than %v", probeGrace)}
		}
		return probeOutcome{answered: true}
	}

	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	host := p.addr
	if p.network == "unix" {
		host = "localhost"
	}
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: emperor-vassal-probe\r\nAccept: */*\r\n\r\n", host); err != nil {
		return probeOutcome{err: err}
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return probeOutcome{err: fmt.Errorf("no HTTP response: %w", err)}
	}
	if !strings.HasPrefix(line, "HTTP/") {
		return probeOutcome{err: fmt.Errorf("not an HTTP response: %.40q", line)}
	}
	if acc.pid == 0 && tcp != nil {
		// The server may still hold the connection (keep-alive).
		acc, _ = p.acceptorOf(tcp)
	}
	return probeOutcome{answered: true, acceptor: acc.pid}
}

// acceptance is what the vassal can see of who accepted a probe connection.
type acceptance struct {
	observable bool // the system shows acceptances (Linux /proc)
	accepted   bool // some process accepted the connection
	pid        int  // the worker that did, or 0 when unknown
}

// waitAccepted waits up to probeAcceptWait for a process to accept conn.
func (p *prober) waitAccepted(ctx context.Context, conn *net.TCPConn) acceptance {
	deadline := time.Now().Add(probeAcceptWait)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		acc, err := p.acceptorOf(conn)
		if err != nil {
			return acceptance{}
		}
		if acc.accepted || time.Now().After(deadline) {
			return acc
		}
		select {
		case <-ctx.Done():
			return acc
		case <-tick.C:
		}
	}
}

// acceptorOf looks once at who accepted conn. An error means acceptances
// cannot be observed on this system.
func (p *prober) acceptorOf(conn *net.TCPConn) (acceptance, error) {
	inode, err := serverInode(conn)
	if err != nil {
		return acceptance{}, err
	}
	if inode == 0 {
		return acceptance{observable: true}, nil
	}
	return acceptance{observable: true, accepted: true, pid: socketOwner(inode, p.leaders())}, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
