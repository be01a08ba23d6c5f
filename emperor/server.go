package emperor

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// The Emperor's three small servers (stats, command socket, metrics) share
// one shape: a listener, one goroutine per connection with a deadline, and
// a question for the loop. None of them is served inside the loop, so a slow
// client stalls nothing (uWSGI serves its stats inside its loop, B33).

// connDeadline bounds every connection to one of the Emperor's servers.
const connDeadline = 4 * time.Second

// listen opens a server's socket: an abstract unix socket for "@name" (or
// uWSGI's "\0name"), open to the Emperor's uid and root only (see
// abstract_linux.go); TCP when addr has a ':' (and tcp is allowed);
// otherwise a unix socket with mode 0600, so only its owner may connect.
func listen(addr string, tcp bool) (net.Listener, error) {
	return Listen(addr, tcp)
}

// Listen opens a server's socket as the Emperor does (see listen), for a
// caller that must bind it before the Emperor starts: cmd/emperor binds
// its listeners as root, before it drops privileges, and hands them over
// in Options.Listeners.
func Listen(addr string, tcp bool) (net.Listener, error) {
	if name, ok := abstractName(addr); ok {
		return listenAbstract(name)
	}
	if tcp && strings.Contains(addr, ":") {
		return net.Listen("tcp", addr)
	}
	os.Remove(addr)
	l, err := net.Listen("unix", addr)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(addr, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// serve accepts connections on l until ctx ends and hands each, with its
// deadline set, to handle in its own goroutine. A shedder bounds what
// clients can make it hold (see shedder).
func (e *Emperor) serve(ctx context.Context, what string, l net.Listener, handle func(ctx context.Context, c net.Conn)) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	sh := newShedder(maxConns, maxHeld)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				e.log.Error(what+" stopped", "err", err)
			}
			return
		}
		if n := sh.shed(); n > 0 {
			e.log.Warn(what+": too many clients; closed the oldest", "closed", n)
		}
		sc := sh.add(c)
		go func() {
			defer sh.remove(sc)
			c.SetDeadline(time.Now().Add(connDeadline))
			cctx, cancel := context.WithTimeout(ctx, connDeadline)
			defer cancel()
			handle(cctx, sc)
		}()
	}
}

// Each server holds at most maxConns connections and maxHeld bytes of
// answers waiting for slow readers; past either, its oldest connections
// are closed first. A client that connects and never reads costs a socket
// buffer in the kernel and a goroutine, and is the first to go when a new
// one needs room: 2,000 such clients neither lock out a new one nor hold
// their answers' memory.
const (
	maxConns = 256
	maxHeld  = 4 << 20
)

// shedder tracks one server's connections, oldest first.
type shedder struct {
	mu       sync.Mutex
	conns    []*shedConn // in accept order
	held     int         // bytes in writes not yet taken by their readers
	maxConns int
	maxHeld  int
}

func newShedder(maxConns, maxHeld int) *shedder {
	return &shedder{maxConns: maxConns, maxHeld: maxHeld}
}

// shedConn is a connection whose writes the shedder accounts for.
type shedConn struct {
	net.Conn
	sh   *shedder
	held int  // bytes of its write in progress
	shed bool // closed to make room
}

// add registers c.
func (s *shedder) add(c net.Conn) *shedConn {
	sc := &shedConn{Conn: c, sh: s}
	s.mu.Lock()
	s.conns = append(s.conns, sc)
	s.mu.Unlock()
	return sc
}

// remove forgets c and closes it.
func (s *shedder) remove(c *shedConn) {
	s.mu.Lock()
	if i := slices.Index(s.conns, c); i >= 0 {
		s.conns = slices.Delete(s.conns, i, i+1)
	}
	s.held -= c.held
	c.held = 0
	s.mu.Unlock()
	c.Conn.Close()
}

// shed closes the oldest connections while there are maxConns or more
// (room for the one being accepted) or more than maxHeld bytes are held,
// and returns how many it closed. Closing makes their pending writes fail;
// their goroutines then remove them.
func (s *shedder) shed() int {
	return s.shedFor(nil, 0)
}

// shedFor is shed with room for n more bytes held by except, which is
// never closed.
func (s *shedder) shedFor(except *shedConn, n int) int {
	s.mu.Lock()
	// Connections already closed to make room are on their way out: what
	// their writes still hold goes as soon as those writes fail, so it is
	// no reason to close another (it was: hundreds of writers starting at
	// once closed every older connection, then the newest, a client that
	// had just connected).
	live, held := 0, n
	for _, c := range s.conns {
		if !c.shed {
			live++
			held += c.held
		}
	}
	over := func() bool {
		if except == nil {
			return live >= s.maxConns // one more is being accepted
		}
		return held > s.maxHeld
	}
	var victims []*shedConn
	for _, c := range s.conns {
		if !over() {
			break
		}
		if c == except || c.shed {
			continue
		}
		c.shed = true
		victims = append(victims, c)
		live--
		held -= c.held
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.Conn.Close()
	}
	return len(victims)
}

// Write accounts for p while the reader takes it, first closing the oldest
// other connections if p would put the server over its budget.
func (c *shedConn) Write(p []byte) (int, error) {
	c.sh.shedFor(c, len(p))
	c.sh.mu.Lock()
	c.held += len(p)
	c.sh.held += len(p)
	c.sh.mu.Unlock()
	n, err := c.Conn.Write(p)
	c.sh.mu.Lock()
	c.held -= len(p)
	c.sh.held -= len(p)
	c.sh.mu.Unlock()
	return n, err
}
