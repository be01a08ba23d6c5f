package vassal

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// notifyEnv is the variable that tells a worker where to send sd_notify
// messages.
const notifyEnv = "NOTIFY_SOCKET"

// notifyBridge is the vassal's end of the systemd notify protocol: a
// unixgram socket in a private directory, with SO_PASSCRED so that every
// datagram carries the sender's pid.
type notifyBridge struct {
	conn *net.UnixConn
	dir  string // removed on close
	path string // what NOTIFY_SOCKET says
}

// notifyMsg is one datagram a process sent: its pid (from the kernel's
// credentials) and its KEY=VALUE lines.
type notifyMsg struct {
	pid    int
	fields map[string]string
}

// openNotify creates the notify socket. The directory is 0711 and the
// socket 0666, so workers running under another uid (after uid) can still
// send to it.
func openNotify() (_ *notifyBridge, retErr error) {
	dir, err := os.MkdirTemp("", "vassal-notify-")
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		conn.Close()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	rc, err := conn.SyscallConn()
	if err == nil {
		var serr error
		err = rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
		if err == nil && serr != nil {
			err = os.NewSyscallError("setsockopt SO_PASSCRED", serr)
		}
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	return &notifyBridge{conn: conn, dir: dir, path: path}, nil
}

// read passes every message to deliver until the bridge is closed.
// Messages without credentials are dropped: their sender is unknown.
func (b *notifyBridge) read(deliver func(notifyMsg)) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, _, _, err := b.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pid := senderPid(oob[:oobn])
		if pid <= 0 {
			continue
		}
		m := notifyMsg{pid: pid, fields: map[string]string{}}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m.fields[k] = v
			}
		}
		deliver(m)
	}
}

// senderPid reads the pid from SCM_CREDENTIALS, or returns 0.
func senderPid(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}

// close closes the socket and removes its directory.
func (b *notifyBridge) close() {
	b.conn.Close()
	os.RemoveAll(b.dir)
}

// notified applies an sd_notify message to the worker that sent it (the
// worker itself or a process in its group).
func (r *runner) notified(ev notified) {
	for _, g := range r.gens {
		for _, w := range g.workers {
			if w.cmd == nil || (w.pid != ev.msg.pid && w.pid != ev.pgrp) {
				continue
			}
			if st, ok := ev.msg.fields["STATUS"]; ok {
				w.status = st
			}
			if ev.msg.fields["WATCHDOG"] == "1" {
				w.watchdog = time.Now()
			}
			if ev.msg.fields["READY"] == "1" && w.replaces != 0 {
				r.log.Info("replacement worker notified READY=1", "gen", g.id, "worker", w.slot, "pid", w.pid)
				r.replacementReady(g, w)
			} else if ev.msg.fields["READY"] == "1" {
				r.log.Info("worker notified READY=1", "gen", g.id, "worker", w.slot, "pid", w.pid)
				r.probed(probed{gen: g.id, outcome: probeOutcome{answered: true, acceptor: w.pid}})
			}
			return
		}
	}
}
