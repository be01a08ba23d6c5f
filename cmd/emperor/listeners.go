package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/emperor-dev/emperor/emperor"
	"golang.org/x/sys/unix"
)

// An Emperor that drops privileges (uid) binds its stats, metrics and
// command sockets first, as root, as uWSGI binds its sockets before it
// drops: a port below 1024 or a socket in a directory only root may write
// works under uid. The drop re-executes the Emperor (privdrop_linux.go);
// the bound sockets cross the exec as inherited fds named in listenEnv
// ("ROLE=FD,..."), and the dropped image serves on them. Abstract sockets
// need no privilege and are bound after the drop.

const listenEnv = "_EMPEROR_LISTENERS"

// earlyListener is one server's socket bound before the drop.
type earlyListener struct {
	role string // as emperor.Options.Listeners names it
	file *os.File
}

// bindEarly binds the servers' sockets when the Emperor is about to change
// user by re-executing; otherwise it binds nothing (the Emperor binds them
// at start, as before). A unix socket is handed to the user.
func bindEarly(s *settings, uid, gid int) ([]earlyListener, error) {
	if os.Getuid() != 0 || uid < 0 || uid == os.Getuid() || os.Getenv(dropEnv) != "" {
		return nil, nil
	}
	var out []earlyListener
	fail := func(err error) ([]earlyListener, error) {
		for _, l := range out {
			l.file.Close()
		}
		return nil, err
	}
	for _, srv := range []struct {
		role, addr string
		tcp        bool
	}{
		{"emperor-stats", s.stats, true},
		{"emperor-metrics", s.metrics, true},
		{"emperor-command-socket", s.commandSocket, false},
	} {
		if srv.addr == "" || strings.HasPrefix(srv.addr, "@") || strings.HasPrefix(srv.addr, "\x00") {
			continue
		}
		l, err := emperor.Listen(srv.addr, srv.tcp)
		if err != nil {
			return fail(fmt.Errorf("%s %s: %w", srv.role, srv.addr, err))
		}
		var f *os.File
		switch l := l.(type) {
		case *net.TCPListener:
			f, err = l.File()
		case *net.UnixListener:
			l.SetUnlinkOnClose(false) // the dropped Emperor serves on it
			if err = os.Chown(srv.addr, uid, gid); err == nil {
				f, err = l.File()
			}
		default:
			err = fmt.Errorf("a %T cannot be handed over", l)
		}
		l.Close() // f holds the socket
		if err != nil {
			return fail(fmt.Errorf("%s %s: %w", srv.role, srv.addr, err))
		}
		out = append(out, earlyListener{role: srv.role, file: f})
	}
	return out, nil
}

// handOver makes the listeners survive the exec and names them in env.
func handOver(ls []earlyListener, env []string) ([]string, error) {
	if len(ls) == 0 {
		return env, nil
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		fd := int(l.file.Fd())
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return nil, fmt.Errorf("%s: %w", l.role, os.NewSyscallError("fcntl", err))
		}
		parts[i] = l.role + "=" + strconv.Itoa(fd)
	}
	return append(env, listenEnv+"="+strings.Join(parts, ",")), nil
}

// inheritedListeners are the listeners the image before the drop bound,
// by role; nil when there are none.
func inheritedListeners() (map[string]net.Listener, error) {
	v, ok := os.LookupEnv(listenEnv)
	os.Unsetenv(listenEnv) // no vassal gets it
	if !ok || v == "" {
		return nil, nil
	}
	out := map[string]net.Listener{}
	for _, part := range strings.Split(v, ",") {
		role, fdText, _ := strings.Cut(part, "=")
		fd, err := strconv.Atoi(fdText)
		if err != nil || fd < 3 {
			return nil, fmt.Errorf("%s: bad entry %q", listenEnv, part)
		}
		f := os.NewFile(uintptr(fd), role)
		l, err := net.FileListener(f)
		f.Close() // l has its own fd
		if err != nil {
			return nil, fmt.Errorf("%s: the socket bound before the privilege drop: %w", role, err)
		}
		out[role] = l
	}
	return out, nil
}
