package emperor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Abstract unix sockets (emperor-stats @name, as uWSGI allows for every
// unix socket it binds) have no file and so no permissions: anyone in the
// network namespace may connect. Ours let in only the Emperor's own uid and
// root, as the 0600 file of a path socket does, and answer anyone else
// with one line saying so.
//
// uWSGI spells "@name" (and "\0name") as the kernel name "\0name\0": it
// counts the string's terminating NUL in the address length, in its
// servers and in its own clients alike. Most other clients (Go's "@name",
// Python's "\0name", socat, uwsgitop) mean "\0name". Ours binds both, so a
// client of either kind reaches it.

// abstractName returns the name of an abstract socket address, "@name" or
// uWSGI's "\0name" (a backslash and a zero), and whether addr is one.
func abstractName(addr string) (string, bool) {
	if name, ok := strings.CutPrefix(addr, "@"); ok {
		return name, true
	}
	if name, ok := strings.CutPrefix(addr, `\0`); ok {
		return name, true
	}
	return "", false
}

// listenAbstract binds the abstract socket name under both spellings.
func listenAbstract(name string) (net.Listener, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return nil, fmt.Errorf("abstract socket name %q: empty or with a NUL byte", name)
	}
	// Go writes "@x" as "\0x" and counts every byte of the string, so a
	// trailing NUL in the string is uWSGI's terminating one.
	uw, err := net.Listen("unix", "@"+name+"\x00")
	if err != nil {
		return nil, err
	}
	plain, err := net.Listen("unix", "@"+name)
	if err != nil {
		uw.Close()
		return nil, err
	}
	a := &abstractListener{conns: make(chan net.Conn), done: make(chan struct{}), ls: []net.Listener{plain, uw}}
	for _, l := range a.ls {
		go a.accept(l)
	}
	return a, nil
}

// abstractListener merges the two listeners of one abstract name and
// admits only the Emperor's uid and root.
type abstractListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	ls    []net.Listener // Go's spelling first: its Addr is the listener's
	err   error          // why it closed, when an accept failed; set before done closes
}

// accept hands l's admitted connections to Accept until l is closed. An
// accept that fails (out of fds, say) closes the whole listener with its
// error, which Accept returns: the server then stops and says why, as it
// does for its other listeners.
func (a *abstractListener) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				a.close(err)
			}
			return
		}
		if uid, ok := peerAllowed(c); !ok {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(fmt.Appendf(nil, "emperor: uid %d may not use this socket (only uid %d and root may)\n", uid, os.Geteuid()))
			c.Close()
			continue
		}
		select {
		case a.conns <- c:
		case <-a.done:
			c.Close()
			return
		}
	}
}

// peerAllowed returns the uid of c's peer and whether it may talk to the
// Emperor: root or the Emperor's own effective uid, read when it connects
// (the Emperor may have dropped privileges since it bound the socket).
func peerAllowed(c net.Conn) (int, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return -1, false
	}
	var cred *unix.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return -1, false
	}
	uid := int(cred.Uid)
	return uid, uid == 0 || uid == os.Geteuid()
}

// Accept returns the next admitted connection; once the listener is
// closed, the error that closed it or net.ErrClosed.
func (a *abstractListener) Accept() (net.Conn, error) {
	select {
	case c := <-a.conns:
		return c, nil
	case <-a.done:
		if a.err != nil {
			return nil, a.err
		}
		return nil, net.ErrClosed
	}
}

// Close closes both listeners.
func (a *abstractListener) Close() error {
	a.close(nil)
	return nil
}

// close closes both listeners once, recording err as the reason.
func (a *abstractListener) close(err error) {
	a.once.Do(func() {
		a.err = err
		close(a.done)
		for _, l := range a.ls {
			l.Close()
		}
	})
}

// Addr is the address in Go's spelling, "@name".
func (a *abstractListener) Addr() net.Addr { return a.ls[0].Addr() }
