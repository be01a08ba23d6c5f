package ondemand

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultBacklog is the listen queue when none is given: uWSGI's
// listen_queue default.
const DefaultBacklog = 100

// maxPath is the longest UNIX socket path sun_path holds with its NUL.
const maxPath = len(unix.RawSockaddrUnix{}.Path) - 1

// Listener is an on-demand vassal's socket, bound and listening, held by
// the Emperor and handed to the vassal as its fd 0. Connections that come
// while no vassal runs wait in its queue: none is refused.
type Listener struct {
	// Name is the socket's name as configured.
	Name string
	fd   int
	// path and ino identify the UNIX socket file Close removes: only the
	// one bound here, not one that replaced it since.
	path string
	ino  uint64
}

// Fd is the listening socket (blocking, close-on-exec).
func (l *Listener) Fd() int { return l.fd }

// Addr is the address the socket is bound to, with the port the kernel
// chose for ":0".
func (l *Listener) Addr() string {
	sa, err := unix.Getsockname(l.fd)
	if err != nil {
		return l.Name
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return l.Name
}

// Close closes the socket and removes its UNIX socket file if it is still
// the one bound here.
func (l *Listener) Close() error {
	err := unix.Close(l.fd)
	if l.path != "" {
		var st unix.Stat_t
		if unix.Lstat(l.path, &st) == nil && st.Ino == l.ino && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			os.Remove(l.path)
		}
	}
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// Owner is who a UNIX socket file is given to (tyrant mode: the vassal's
// owner); nil keeps the Emperor's.
type Owner struct{ UID, GID int }

// Listen binds and listens on name:
//
//   - "@name": an abstract UNIX socket;
//   - "host:port", "[v6]:port" or ":port" (every IPv4 address, as in
//     uWSGI): TCP, SO_REUSEADDR; the host is an IP address (no DNS lookup,
//     as in uWSGI, but IPv6 too);
//   - anything else: a UNIX socket file, mode 0666 as uWSGI makes it, given
//     to owner when not nil. A stale socket file of that name is replaced;
//     any other file is an error (uWSGI unlinks whatever is there), and so
//     is a path longer than sun_path holds (uWSGI truncates it).
func Listen(name string, owner *Owner, backlog int) (*Listener, error) {
	if backlog <= 0 {
		backlog = DefaultBacklog
	}
	l, err := bind(name, owner)
	if err != nil {
		return nil, fmt.Errorf("on-demand socket %q: %w", name, err)
	}
	if err := unix.Listen(l.fd, backlog); err != nil {
		l.Close()
		return nil, fmt.Errorf("on-demand socket %q: %w", name, os.NewSyscallError("listen", err))
	}
	return l, nil
}

func bind(name string, owner *Owner) (*Listener, error) {
	switch {
	case name == "":
		return nil, errors.New("empty name")
	case strings.HasPrefix(name, "@"):
		if len(name) > maxPath+1 || strings.IndexByte(name, 0) >= 0 {
			return nil, fmt.Errorf("an abstract name holds at most %d bytes and no NUL", maxPath)
		}
		return bindTo(name, unix.AF_UNIX, &unix.SockaddrUnix{Name: name})
	case isTCP(name):
		host, port, err := net.SplitHostPort(name)
		if err != nil {
			return nil, err
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q: not a number from 0 to 65535", port)
		}
		if host == "" {
			host = "0.0.0.0"
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return nil, fmt.Errorf("host %q: not an IP address (no DNS lookup is made)", host)
		}
		if ip.Is4() || ip.Is4In6() {
			return bindTo(name, unix.AF_INET, &unix.SockaddrInet4{Port: int(p), Addr: ip.Unmap().As4()})
		}
		return bindTo(name, unix.AF_INET6, &unix.SockaddrInet6{Port: int(p), Addr: ip.As16()})
	}
	if len(name) > maxPath {
		return nil, fmt.Errorf("a UNIX socket path holds at most %d bytes; this one has %d", maxPath, len(name))
	}
	var st unix.Stat_t
	switch err := unix.Lstat(name, &st); {
	case err == nil && st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return nil, errors.New("a file that is not a socket is in the way")
	case err == nil:
		if err := os.Remove(name); err != nil { // a stale socket
			return nil, err
		}
	}
	l, err := bindTo(name, unix.AF_UNIX, &unix.SockaddrUnix{Name: name})
	if err != nil {
		return nil, err
	}
	l.path = name
	if err := unix.Lstat(name, &st); err != nil {
		l.Close()
		return nil, os.NewSyscallError("stat", err)
	}
	l.ino = st.Ino
	if err := unix.Chmod(name, 0o666); err != nil {
		l.Close()
		return nil, os.NewSyscallError("chmod", err)
	}
	if owner != nil {
		if err := unix.Lchown(name, owner.UID, owner.GID); err != nil {
			l.Close()
			return nil, os.NewSyscallError("chown", err)
		}
	}
	return l, nil
}

// isTCP reports whether name is a TCP address: it holds a ':' and is not
// a path.
func isTCP(name string) bool {
	return strings.Contains(name, ":") && !strings.ContainsRune(name, '/')
}

func bindTo(name string, family int, sa unix.Sockaddr) (*Listener, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if family != unix.AF_UNIX {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(fd)
			return nil, os.NewSyscallError("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	return &Listener{Name: name, fd: fd}, nil
}
