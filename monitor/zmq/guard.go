package zmq

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"

	"github.com/emperor-dev/emperor/monitor/push"
)

// zmq4 allocates each frame at the size its header declares, before reading
// it, and collects the parts of a message without bound: one peer
// declaring a frame of 2^50 bytes makes it panic, which would take the
// Emperor (and, through the parent-death signal, every vassal) down. So
// the PULL socket listens through guarded transports whose connections
// parse the ZMTP 3 stream as it is read and cut a peer off, with an error
// Run logs, before zmq4 sees a frame over maxFrame, a command over
// maxCommand or a message of more than maxParts parts.
const (
	maxFrame   = push.MaxConfig + 64<<10
	maxCommand = 64 << 10
	maxParts   = 6
	// zmtpGreeting is the length of a ZMTP 3 greeting.
	zmtpGreeting = 64
)

// guardedSchemes maps the endpoint schemes we accept to the guarded
// transports registered for them.
var guardedSchemes = map[string]string{"tcp": "emperor-guarded-tcp", "ipc": "emperor-guarded-ipc"}

func init() {
	// zmq4's transport registry, filled once like monitor.Register.
	for scheme, network := range map[string]string{"tcp": "tcp", "ipc": "unix"} {
		if err := zmq4.RegisterTransport(guardedSchemes[scheme], guardedTransport{transport.New(network)}); err != nil {
			panic("zmq: " + err.Error())
		}
	}
}

// guardedEndpoint maps tcp://ADDR or ipc://PATH to its guarded transport.
func guardedEndpoint(endpoint string) (string, error) {
	scheme, addr, ok := strings.Cut(endpoint, "://")
	if g, known := guardedSchemes[scheme]; ok && known {
		return g + "://" + addr, nil
	}
	return "", fmt.Errorf("zmq endpoint %q: want tcp://HOST:PORT or ipc://PATH", endpoint)
}

type guardedTransport struct{ transport.Transport }

func (t guardedTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	l, err := t.Transport.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return guardedListener{l}, nil
}

type guardedListener struct{ net.Listener }

func (l guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardedConn{Conn: c, greeting: zmtpGreeting}, nil
}

// PeerError says why a peer was cut off.
type PeerError struct {
	Peer   string
	Reason string
}

func (e *PeerError) Error() string { return "zmq peer " + e.Peer + " cut off: " + e.Reason }

// guardedConn parses the inbound ZMTP stream. It is read by one goroutine
// of zmq4 at a time.
type guardedConn struct {
	net.Conn
	greeting int    // greeting bytes still to pass
	hdr      []byte // the frame header read so far
	body     uint64 // body bytes of the current frame still to pass
	parts    int    // parts of the current message so far
	err      error
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if perr := c.scan(p[:n]); perr != nil {
		c.err = perr
		c.Conn.Close()
		return 0, perr
	}
	return n, err
}

// scan advances the parser over b.
func (c *guardedConn) scan(b []byte) error {
	for len(b) > 0 {
		switch {
		case c.greeting > 0:
			k := min(c.greeting, len(b))
			c.greeting -= k
			b = b[k:]
		case c.body > 0:
			k := min(c.body, uint64(len(b)))
			c.body -= k
			b = b[k:]
		default:
			c.hdr = append(c.hdr, b[0])
			b = b[1:]
			flags := c.hdr[0]
			need := 2
			if flags&0x02 != 0 {
				need = 9
			}
			if len(c.hdr) < need {
				continue
			}
			size := uint64(c.hdr[1])
			if need == 9 {
				size = 0
				for _, x := range c.hdr[1:9] {
					size = size<<8 | uint64(x)
				}
			}
			c.hdr = c.hdr[:0]
			if err := c.frame(flags, size); err != nil {
				return err
			}
			c.body = size
		}
	}
	return nil
}

// frame checks one frame header.
func (c *guardedConn) frame(flags byte, size uint64) error {
	bad := func(format string, a ...any) error {
		return &PeerError{Peer: c.RemoteAddr().String(), Reason: fmt.Sprintf(format, a...)}
	}
	if flags&0x04 != 0 { // a command (handshake, PING)
		if size > maxCommand {
			return bad("command frame of %d bytes (limit %d)", size, maxCommand)
		}
		return nil
	}
	if size > maxFrame {
		return bad("message part of %d bytes (limit %d)", size, maxFrame)
	}
	c.parts++
	if c.parts > maxParts {
		return bad("message of more than %d parts", maxParts)
	}
	if flags&0x01 == 0 { // the last part
		c.parts = 0
	}
	return nil
}
