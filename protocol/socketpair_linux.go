package protocol

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Pair is one emperor↔vassal channel: a SOCK_STREAM socketpair.
type Pair struct {
	// Emperor is the Emperor's end: close-on-exec and non-blocking.
	Emperor int
	// Vassal is the vassal's end: close-on-exec too; the spawner passes it
	// explicitly so it is the only copy a child inherits.
	Vassal *os.File
}

// NewPair creates a channel. Both ends are close-on-exec so no other child
// inherits them by accident; the Emperor's end is non-blocking so a write
// never stalls the Emperor's loop.
func NewPair(name string) (Pair, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Pair{}, os.NewSyscallError("socketpair", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return Pair{}, os.NewSyscallError("fcntl", err)
	}
	return Pair{Emperor: fds[0], Vassal: os.NewFile(uintptr(fds[1]), name)}, nil
}

// WriteByte writes one control byte to a non-blocking fd without waiting.
// A full socket buffer (a vassal that stopped reading) is an error, never a
// stall.
func WriteByte(fd int, b Byte) error {
	buf := [1]byte{byte(b)}
	for {
		n, err := unix.Write(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		if n != 1 {
			return fmt.Errorf("write: short write")
		}
		return nil
	}
}

// WriteAll writes buf fully to a non-blocking fd, as long as the socket
// buffer takes it. It never waits: a frame that does not fit in the socket
// buffer fails with EAGAIN, which with the default 200 KiB buffers only
// happens to a vassal that stopped reading. Partial writes are handled (the
// uWSGI emperor ignores them, bug B10).
func WriteAll(fd int, buf []byte) error {
	for len(buf) > 0 {
		n, err := unix.Write(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		buf = buf[n:]
	}
	return nil
}
