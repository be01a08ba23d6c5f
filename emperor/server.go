package emperor

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"time"
)

// The Emperor's three small servers (stats, command socket, metrics) share
// one shape: a listener, one goroutine per connection with a deadline, and
// a question for the loop. None of them is served inside the loop, so a slow
// client stalls nothing (uWSGI serves its stats inside its loop, B33).

// connDeadline bounds every connection to one of the Emperor's servers.
const connDeadline = 4 * time.Second

// listen opens a server's socket: TCP when addr has a ':' (and tcp is
// allowed), otherwise a unix socket with mode 0600, so only its owner may
// connect.
func listen(addr string, tcp bool) (net.Listener, error) {
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
// deadline set, to handle in its own goroutine.
func (e *Emperor) serve(ctx context.Context, what string, l net.Listener, handle func(ctx context.Context, c net.Conn)) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				e.log.Error(what+" stopped", "err", err)
			}
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(connDeadline))
			cctx, cancel := context.WithTimeout(ctx, connDeadline)
			defer cancel()
			handle(cctx, c)
		}()
	}
}
