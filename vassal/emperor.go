package vassal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/protocol"
)

// Timeouts of the config channel.
const (
	// frameReadTimeout bounds every read of a config frame once its first
	// byte is expected, as uWSGI does (5 s per read).
	frameReadTimeout = 5 * time.Second
	// frameDrainWait is how long the vassal waits for a further frame after
	// the one it asked for: a uWSGI 2.0 Emperor pushes a frame with every
	// reload byte as well as one per request, and only the newest counts.
	frameDrainWait = 100 * time.Millisecond
	// frameBufferedWait is how long a check for frames already queued
	// waits: long enough to see bytes that are in the socket buffer.
	frameBufferedWait = 10 * time.Millisecond
	// controlWriteTimeout bounds a write of a control byte, so an Emperor
	// that stopped reading never stalls the vassal's loop.
	controlWriteTimeout = 5 * time.Second
)

// emperorClient is the vassal's side of the Emperor protocol: the control
// channel (single bytes both ways) and, when the Emperor supplies config
// text, the config channel (frames from the Emperor).
//
// Both files stay open for the life of the process: closing the control
// channel tells the Emperor the vassal is gone. They are close-on-exec so
// no worker inherits them; a future self re-exec must clear that flag.
type emperorClient struct {
	ctl *os.File // control channel; read by readControl, written by send
	cfg *os.File // config channel, or nil; used by one config load at a time
}

// openEmperor returns the client for the fds the environment names, or nil
// when the vassal is not governed by an Emperor (no EnvFD).
func openEmperor(getenv func(string) (string, bool)) (*emperorClient, error) {
	v, ok := getenv(protocol.EnvFD)
	if !ok || v == "" {
		return nil, nil
	}
	ctl, err := adoptFD(protocol.EnvFD, v, "emperor")
	if err != nil {
		return nil, err
	}
	c := &emperorClient{ctl: ctl}
	if v, ok := getenv(protocol.EnvConfigFD); ok && v != "" {
		if c.cfg, err = adoptFD(protocol.EnvConfigFD, v, "emperor-config"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// adoptFD turns the inherited fd named by variable env into a pollable
// *os.File: non-blocking, so reads and writes can have deadlines, and
// close-on-exec, so workers do not inherit it.
func adoptFD(env, value, name string) (*os.File, error) {
	fd, err := strconv.Atoi(value)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("%s=%q: not an fd number", env, value)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("%s=%d: %w", env, fd, os.NewSyscallError("fcntl", err))
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("%s=%d: %w", env, fd, os.NewSyscallError("fcntl", err))
	}
	return os.NewFile(uintptr(fd), name), nil
}

// send writes one control byte to the Emperor. It is safe to call from
// several goroutines.
func (c *emperorClient) send(b protocol.Byte) error {
	if err := c.ctl.SetWriteDeadline(time.Now().Add(controlWriteTimeout)); err != nil {
		return fmt.Errorf("emperor: send %s: %w", b.FromVassal(), err)
	}
	if _, err := c.ctl.Write([]byte{byte(b)}); err != nil {
		return fmt.Errorf("emperor: send %s: %w", b.FromVassal(), err)
	}
	return nil
}

// readControl reads control bytes until the channel fails, passing each
// byte to msg and the final error (io.EOF when the Emperor closed its end)
// to lost. It runs in its own goroutine; an Emperor that is silent costs no
// thread.
func (c *emperorClient) readControl(msg func(protocol.Byte), lost func(error)) {
	buf := make([]byte, 64)
	for {
		n, err := c.ctl.Read(buf)
		for _, b := range buf[:n] {
			msg(protocol.Byte(b))
		}
		if err != nil {
			lost(err)
			return
		}
		if n == 0 {
			lost(io.EOF)
			return
		}
	}
}

// initialConfig reads the frame the Emperor pushes right after the spawn.
func (c *emperorClient) initialConfig() ([]byte, error) {
	if c == nil || c.cfg == nil {
		return nil, fmt.Errorf("not a vassal with a config channel (%s is not set)", protocol.EnvConfigFD)
	}
	text, err := c.readFrame(frameReadTimeout)
	if err != nil {
		return nil, err
	}
	// Anything already queued behind it is newer.
	return c.drain(text, frameBufferedWait)
}

// reloadConfig asks the Emperor for the current config text and returns the
// newest complete frame: frames queued before the request (a uWSGI 2.0
// Emperor pushes one with every reload) are read first, then the answer,
// then anything that follows within frameDrainWait.
func (c *emperorClient) reloadConfig() ([]byte, error) {
	if c == nil || c.cfg == nil {
		return nil, fmt.Errorf("not a vassal with a config channel (%s is not set)", protocol.EnvConfigFD)
	}
	queued, err := c.drain(nil, frameBufferedWait)
	if err != nil {
		return nil, err
	}
	if err := c.send(protocol.ConfigRequest); err != nil {
		return nil, err
	}
	text, err := c.readFrame(frameReadTimeout)
	if err != nil {
		if queued != nil {
			return queued, nil
		}
		return nil, err
	}
	return c.drain(text, frameDrainWait)
}

// drain reads further frames for as long as each one starts within wait,
// and returns the last (newest) one, or newest when none comes.
func (c *emperorClient) drain(newest []byte, wait time.Duration) ([]byte, error) {
	for {
		text, err := c.readFrame(wait)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return newest, nil
		}
		if err != nil {
			return nil, err
		}
		newest = text
	}
}

// readFrame reads one config frame whose first byte comes within first;
// every later read has frameReadTimeout. A timeout before the first byte is
// os.ErrDeadlineExceeded and leaves the channel in sync.
func (c *emperorClient) readFrame(first time.Duration) ([]byte, error) {
	var b [1]byte
	if err := c.cfg.SetReadDeadline(time.Now().Add(first)); err != nil {
		return nil, err
	}
	n, err := c.cfg.Read(b[:])
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("config channel: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("config channel: %w", io.EOF)
	}
	text, err := protocol.ReadFrame(io.MultiReader(bytes.NewReader(b[:]), deadlineReader{c.cfg, frameReadTimeout}))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// A frame cut short leaves the channel out of sync: say so, and
		// never report it as "no frame".
		return nil, fmt.Errorf("config channel: frame stalled for %v: %w", frameReadTimeout, io.ErrUnexpectedEOF)
	}
	return text, err
}

// deadlineReader gives every Read of a pollable file its own deadline.
type deadlineReader struct {
	f *os.File
	d time.Duration
}

func (r deadlineReader) Read(p []byte) (int, error) {
	if err := r.f.SetReadDeadline(time.Now().Add(r.d)); err != nil {
		return 0, err
	}
	return r.f.Read(p)
}
