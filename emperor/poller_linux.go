package emperor

import (
	"context"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// poller watches the Emperor's per-vassal fds (control channels, and config
// channels while a frame waits for room) through one epoll set. The epoll fd
// itself sits on the Go runtime poller, so waiting costs no OS thread and no
// goroutine per vassal: with 1000 vassals there are 1000 fds and still one
// goroutine. Exits do not come through it (reaper_linux.go).
//
// Every fd is registered one-shot with a token. When it becomes readable the
// token is delivered to the loop, which reads what there is and re-arms the
// fd; tokens of fds the loop has since closed are simply unknown and dropped,
// so a reused fd number can never be confused with its predecessor (uWSGI's
// bug B24).
type poller struct {
	epfd int
	file *os.File // epfd on the runtime poller
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return &poller{epfd: fd, file: os.NewFile(uintptr(fd), "epoll")}, nil
}

const (
	pollIn  = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT
	pollOut = unix.EPOLLOUT | unix.EPOLLONESHOT
)

func pollEvent(events uint32, tok uint64) *unix.EpollEvent {
	return &unix.EpollEvent{Events: events, Fd: int32(uint32(tok)), Pad: int32(uint32(tok >> 32))}
}

// add registers fd under tok, armed for one readiness report.
func (p *poller) add(fd int, tok uint64) error {
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, pollEvent(pollIn, tok)))
}

// rearm re-enables a one-shot registration after its report was handled.
func (p *poller) rearm(fd int, tok uint64) error {
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, pollEvent(pollIn, tok)))
}

// writable registers fd under tok for one report that it can be written
// to; added is whether fd is registered already.
func (p *poller) writable(fd int, tok uint64, added bool) error {
	op := unix.EPOLL_CTL_ADD
	if added {
		op = unix.EPOLL_CTL_MOD
	}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(p.epfd, op, fd, pollEvent(pollOut, tok)))
}

// run delivers batches of ready tokens to out until ctx is done.
func (p *poller) run(ctx context.Context, out chan<- []uint64) error {
	rc, err := p.file.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { p.file.Close() })
	defer stop()
	events := make([]unix.EpollEvent, 128)
	for {
		var n int
		var werr error
		err := rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr == unix.EINTR {
				n, werr = 0, nil
			}
			return n > 0 || werr != nil
		})
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
		if werr != nil {
			return os.NewSyscallError("epoll_wait", werr)
		}
		batch := make([]uint64, n)
		for i := range n {
			batch[i] = uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
		}
		select {
		case out <- batch:
		case <-ctx.Done():
			return nil
		}
	}
}

// close releases the epoll fd (if run has not already).
func (p *poller) close() { p.file.Close() }
