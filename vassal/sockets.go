package vassal

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/usergroup"
)

// listener is a socket the vassal bound. The vassal keeps it open for as
// long as some generation of workers uses it, so connections queue in its
// backlog across worker restarts and reloads instead of being refused.
type listener struct {
	spec    SocketSpec
	file    *os.File     // the listening socket: blocking, close-on-exec
	network string       // "tcp" or "unix", for probing
	dial    string       // address a probe connects to
	unlink  string       // unix socket file this vassal created, removed on close
	backlog int          // current listen queue length
	users   int          // generations using it; owned by the loop
	local   *net.TCPAddr // bound TCP address, nil for unix sockets
}

// tcpAddrOf converts a bound inet address, or returns nil.
func tcpAddrOf(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To4(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}

// bindSocket creates, binds and listens on the socket spec names, with
// SO_REUSEADDR and the given listen queue. The address forms are uWSGI's:
// "host:port", ":port" (every IPv4 interface), "[v6]:port", a unix socket
// path, or "@name" for an abstract unix socket. A stale unix socket file
// (nothing answers on it) is replaced; a live one is an error.
func bindSocket(spec SocketSpec, backlog int) (*listener, error) {
	return bindSocketWith(spec, bindOptions{backlog: backlog})
}

// bindOptions are the settings that shape every bound socket.
type bindOptions struct {
	backlog   int
	chmod     os.FileMode // unix socket file mode; 0 keeps the umask's
	reusePort bool        // SO_REUSEPORT on TCP sockets
	chown     string      // chown-socket: "user[:group]" for unix socket files
}

// bindSocketWith is bindSocket with chmod-socket and reuse-port applied.
func bindSocketWith(spec SocketSpec, o bindOptions) (_ *listener, retErr error) {
	backlog := o.backlog
	if n, ok := inheritedFD(spec.Addr); ok {
		return adoptListener(spec, n, backlog)
	}
	l := &listener{spec: spec}
	var (
		family int
		sa     unix.Sockaddr
	)
	if isUnixAddr(spec.Addr) {
		family, l.network = unix.AF_UNIX, "unix"
		path := spec.Addr
		if strings.HasPrefix(path, "@") {
			// Abstract: no file to create or remove.
			sa = &unix.SockaddrUnix{Name: "\x00" + path[1:]}
			l.dial = "@" + path[1:]
		} else {
			abs, err := filepath.Abs(path)
			if err != nil {
				return nil, err
			}
			if err := removeStaleSocket(abs); err != nil {
				return nil, err
			}
			sa = &unix.SockaddrUnix{Name: abs}
			l.dial, l.unlink = abs, abs
		}
	} else {
		l.network = "tcp"
		var err error
		if family, sa, err = tcpSockaddr(spec.Addr); err != nil {
			return nil, err
		}
	}

	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(fd)
		}
	}()
	if family != unix.AF_UNIX {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return nil, os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
		if family == unix.AF_INET6 {
			// "[::]:port" means IPv6 only; ":port" is the IPv4 wildcard.
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		}
		if o.reusePort {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return nil, os.NewSyscallError("setsockopt SO_REUSEPORT", err)
			}
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}
	if l.unlink != "" && o.chmod != 0 {
		if err := os.Chmod(l.unlink, o.chmod); err != nil {
			os.Remove(l.unlink)
			return nil, fmt.Errorf("chmod-socket: %w", err)
		}
	}
	if l.unlink != "" && o.chown != "" {
		uid, gid, err := lookupOwner(o.chown)
		if err == nil {
			err = os.Lchown(l.unlink, uid, gid)
		}
		if err != nil {
			os.Remove(l.unlink)
			return nil, fmt.Errorf("chown-socket: %w", err)
		}
	}
	l.backlog = backlog
	if err := unix.Listen(fd, backlog); err != nil {
		if l.unlink != "" {
			os.Remove(l.unlink)
		}
		return nil, os.NewSyscallError("listen", err)
	}
	if l.network == "tcp" {
		bound, err := unix.Getsockname(fd)
		if err != nil {
			return nil, os.NewSyscallError("getsockname", err)
		}
		l.dial, l.local = dialAddr(bound), tcpAddrOf(bound)
	}
	l.file = os.NewFile(uintptr(fd), spec.Kind.String()+" "+spec.Addr)
	return l, nil
}

// setBacklog changes the listen queue length of the bound socket: listen(2)
// on a listening socket only updates it.
func (l *listener) setBacklog(n int) error {
	if n == l.backlog {
		return nil
	}
	rc, err := l.file.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), n) }); err != nil {
		return err
	}
	if lerr != nil {
		return os.NewSyscallError("listen", lerr)
	}
	l.backlog = n
	return nil
}

// close closes the socket and, with vacuum, removes the unix socket file it
// created (without vacuum the file stays, as uWSGI leaves it; the next bind
// replaces it when nothing listens on it).
func (l *listener) close(vacuum bool) error {
	err := l.file.Close()
	if l.unlink != "" && vacuum {
		if rerr := os.Remove(l.unlink); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	return err
}

// isUnixAddr applies uWSGI's rule: a value with a ':' is host:port, unless
// it is plainly a path; anything else is a unix socket.
func isUnixAddr(addr string) bool {
	if strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, ".") || strings.HasPrefix(addr, "@") {
		return true
	}
	return !strings.Contains(addr, ":")
}

// tcpSockaddr resolves "host:port" for bind. An empty host is the IPv4
// wildcard, as in uWSGI.
func tcpSockaddr(addr string) (int, unix.Sockaddr, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		pn, perr := net.LookupPort("tcp", portStr)
		if perr != nil {
			return 0, nil, fmt.Errorf("bad port %q", portStr)
		}
		port = pn
	}
	var ip net.IP
	if host == "" {
		ip = net.IPv4zero
	} else if ip = net.ParseIP(host); ip == nil {
		ips, err := net.LookupIP(host)
		if err != nil {
			return 0, nil, err
		}
		ip = ips[0]
		for _, cand := range ips {
			if cand.To4() != nil {
				ip = cand // prefer IPv4, as uWSGI resolves with AF_INET
				break
			}
		}
	}
	if ip4 := ip.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], ip4)
		return unix.AF_INET, sa, nil
	}
	sa := &unix.SockaddrInet6{Port: port}
	copy(sa.Addr[:], ip.To16())
	return unix.AF_INET6, sa, nil
}

// dialAddr is where a probe connects for a bound TCP address: the address
// itself, or loopback for a wildcard.
func dialAddr(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ip := net.IP(a.Addr[:])
		if ip.IsUnspecified() {
			ip = net.IPv4(127, 0, 0, 1)
		}
		return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		ip := net.IP(a.Addr[:])
		if ip.IsUnspecified() {
			ip = net.IPv6loopback
		}
		return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
	}
	return ""
}

// removeStaleSocket removes a unix socket file nobody listens on. A live
// socket, or a file that is not a socket, is left alone and is an error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: another process is listening on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// inheritedFD parses "fd://N", a listening socket the vassal inherited.
func inheritedFD(addr string) (int, bool) {
	v, ok := strings.CutPrefix(addr, "fd://")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0
}

// adoptListener takes over the inherited listening socket fd n: it must be a
// stream socket that listens already. Its listen queue is set to backlog.
// Closing it later never removes a file: the vassal did not create it.
func adoptListener(spec SocketSpec, n, backlog int) (*listener, error) {
	typ, err := unix.GetsockoptInt(n, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("inherited fd %d is not a socket: %w", n, os.NewSyscallError("getsockopt", err))
	}
	if typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("inherited fd %d is not a stream socket", n)
	}
	if !isListening(n) {
		return nil, fmt.Errorf("inherited fd %d is not a listening socket", n)
	}
	sa, err := unix.Getsockname(n)
	if err != nil {
		return nil, os.NewSyscallError("getsockname", err)
	}
	l := &listener{spec: spec, backlog: backlog}
	switch a := sa.(type) {
	case *unix.SockaddrUnix:
		l.network, l.dial = "unix", a.Name
	default:
		l.network, l.dial, l.local = "tcp", dialAddr(sa), tcpAddrOf(sa)
	}
	if err := unix.Listen(n, backlog); err != nil {
		return nil, os.NewSyscallError("listen", err)
	}
	unix.CloseOnExec(n)
	l.file = os.NewFile(uintptr(n), spec.Kind.String()+" "+spec.Addr)
	return l, nil
}

// isListening reports whether fd is a socket in the listening state
// (SO_ACCEPTCONN).
func isListening(fd int) bool {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	return err == nil && v == 1
}

// dupListener returns a second listener on the socket of l (a shared
// socket an option refers to with =N): closing it leaves l open.
func dupListener(l *listener, spec SocketSpec) (*listener, error) {
	fd, err := unix.FcntlInt(l.file.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, os.NewSyscallError("dup", err)
	}
	d := *l
	d.spec, d.unlink, d.users = spec, "", 0
	d.file = os.NewFile(uintptr(fd), spec.Kind.String()+" "+spec.Addr)
	return &d, nil
}

// lookupOwner resolves "user[:group]" (names or numbers). Without a group
// the user's primary group is used.
func lookupOwner(spec string) (uid, gid int, err error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	uid, gid = -1, -1
	if name != "" {
		if uid, gid, err = usergroup.User(name); err != nil {
			return 0, 0, err
		}
		if hasGroup {
			gid = -1
		}
	}
	if hasGroup && group != "" {
		if gid, err = usergroup.Group(group); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

// acquireSockets returns the listeners settings needs, reusing the ones
// already bound and binding the others. Each returned listener counts one
// more user. On error nothing is acquired.
func (r *runner) acquireSockets(s Settings) ([]*listener, error) {
	var out, fresh []*listener
	for _, spec := range s.Sockets {
		key := keyOf(spec)
		if l := r.sockets[key]; l != nil {
			if slices.Contains(out, l) {
				continue
			}
			if err := l.setBacklog(s.Listen); err != nil {
				r.log.Warn("cannot change the listen queue", "addr", spec.Addr, "listen", s.Listen, "err", err)
			}
			out = append(out, l)
			continue
		}
		l, err := r.bind(spec, s)
		if err != nil {
			for _, l := range fresh {
				l.close(true)
				delete(r.sockets, keyOf(l.spec))
			}
			return nil, fmt.Errorf("%s: %s %s: %w", where(spec.File, spec.Line), spec.Kind, spec.Addr, err)
		}
		r.log.Info("socket bound", "option", spec.Kind.String(), "addr", spec.Addr, "bound", l.dial)
		r.sockets[key] = l
		fresh = append(fresh, l)
		out = append(out, l)
	}
	for _, l := range out {
		l.users++
	}
	return out, nil
}

// bind binds the socket spec names; a reference to a shared-socket binds
// that one once and returns a duplicate of it.
func (r *runner) bind(spec SocketSpec, s Settings) (*listener, error) {
	o := bindOptions{backlog: s.Listen, chmod: s.ChmodSocket, reusePort: s.ReusePort, chown: s.ChownSocket}
	if spec.Shared == 0 {
		return bindSocketWith(spec, o)
	}
	sh := r.shared[spec.Addr]
	if sh == nil {
		var err error
		if sh, err = bindSocketWith(SocketSpec{Kind: RawSocket, Addr: spec.Addr, File: spec.File, Line: spec.Line}, o); err != nil {
			return nil, fmt.Errorf("shared-socket: %w", err)
		}
		r.log.Info("shared socket bound", "addr", spec.Addr, "bound", sh.dial)
		r.shared[spec.Addr] = sh
	}
	return dupListener(sh, spec)
}

// releaseSockets drops a generation's hold on its sockets and closes the
// ones nobody uses any more.
func (r *runner) releaseSockets(socks []*listener) {
	for _, l := range socks {
		l.users--
		if l.users > 0 {
			continue
		}
		delete(r.sockets, keyOf(l.spec))
		if err := l.close(r.settings.Vacuum); err != nil {
			r.log.Warn("closing socket", "addr", l.spec.Addr, "err", err)
		} else {
			r.log.Info("socket closed", "option", l.spec.Kind.String(), "addr", l.spec.Addr)
		}
	}
}

// socketKey identifies a socket across config versions.
type socketKey struct {
	kind   SocketKind
	addr   string
	shared int // SocketSpec.Shared
}

// keyOf is the key of the socket spec names.
func keyOf(spec SocketSpec) socketKey { return socketKey{spec.Kind, spec.Addr, spec.Shared} }
