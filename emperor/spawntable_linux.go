package emperor

// The spawner's own fd table.
//
// A fork copies the parent's fd table and the exec that follows closes
// every close-on-exec fd in the copy: both cost one step per open fd. An
// Emperor holds one fd per vassal, so at 10,000 vassals each spawn copied
// and closed 10,000 fds, and spawning slowed from 0.6 to 2.5 ms per vassal
// as the fleet grew (a cold start of N vassals cost O(N²)). The spawner
// thread therefore works in an fd table of its own (unshare(CLONE_FILES)
// on its locked thread): a copy of the few fds the process had when the
// spawner started, plus what each spawn opens. Its children copy that.
//
// What crosses between the two tables:
//   - the Emperor's end of each new vassal's control (and config) channel,
//     spawner to loop: an SCM_RIGHTS message on a socketpair, sent before
//     the spawn's result and received by the loop when it takes the result
//     (spawnDone), so each message meets its result;
//   - stdout and stderr, loop to spawner: fetched at each spawn with
//     pidfd_getfd from the process's table, so a log reopened since
//     (log-reopen moves fds 1 and 2) is what new vassals write to.
//
// The process's first thread keeps the process's table (it is the one
// /proc/self/fd and pidfd_getfd see), so the spawner never runs on it.
// Without pidfd_getfd (Linux before 5.6) or unshare the spawner shares the
// process's table as before.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// spawnTable is the spawner's side of its own fd table.
type spawnTable struct {
	send  int // the spawner's end of the handoff socketpair
	pidfd int // this process, for pidfd_getfd
}

// handoff is the loop's side: its end of the socketpair.
type handoff struct {
	recv int
}

// lockSpawnerThread locks the calling goroutine to an OS thread that is not
// the process's first one, and returns false if the caller must return at
// once because another goroutine, locked to such a thread, runs run.
func lockSpawnerThread(run func()) bool {
	runtime.LockOSThread()
	if unix.Gettid() != unix.Getpid() {
		return true
	}
	// This is the process's first thread: hold it while a new goroutine
	// locks another (it cannot get this one), then let it go. It forked
	// nothing, so unlocking it is safe.
	locked := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(locked)
		run()
	}()
	<-locked
	runtime.UnlockOSThread()
	return false
}

// ownTable gives the calling (locked, not first) thread its own fd table.
// It returns the spawner's side, and the loop's side with the fds the
// process's table must close (copies made before the unshare). On error
// nothing changed: the thread shares the process's table.
func ownTable(probe int) (st *spawnTable, h *handoff, closeInProcess []int, err error) {
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return nil, nil, nil, os.NewSyscallError("pidfd_open", err)
	}
	fd, err := unix.PidfdGetfd(pidfd, probe, 0)
	if err != nil {
		unix.Close(pidfd)
		return nil, nil, nil, os.NewSyscallError("pidfd_getfd", err)
	}
	unix.Close(fd)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Close(pidfd)
		return nil, nil, nil, os.NewSyscallError("socketpair", err)
	}
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		unix.Close(pidfd)
		unix.Close(pair[0])
		unix.Close(pair[1])
		return nil, nil, nil, os.NewSyscallError("unshare", err)
	}
	trimTable(probe, pair[1], pidfd)
	return &spawnTable{send: pair[1], pidfd: pidfd}, &handoff{recv: pair[0]}, []int{pair[1], pidfd}, nil
}

// trimTable closes, in the calling thread's own table, every copy the
// unshare made but the spawner's own fds (keep), stdin, stdout and stderr,
// and the Go runtime's poller (its epoll and eventfd, which the runtime
// uses from this thread too). A copy kept open would hold its file open
// after the process closes it: another goroutine's pipe to a child it was
// starting at that moment would never see EOF.
func trimTable(keep ...int) {
	d, err := os.Open("/proc/thread-self/fd")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	self := int(d.Fd())
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd <= 2 || fd == self || slices.Contains(keep, fd) {
			continue
		}
		switch l, _ := os.Readlink("/proc/thread-self/fd/" + n); l {
		case "anon_inode:[eventpoll]", "anon_inode:[eventfd]":
			continue
		}
		unix.Close(fd)
	}
	d.Close()
}

// fetch copies fd of the process's table into the spawner's.
func (st *spawnTable) fetch(fd uintptr) (int, error) {
	c, err := unix.PidfdGetfd(st.pidfd, int(fd), 0) // close-on-exec, always
	if err != nil {
		return -1, os.NewSyscallError("pidfd_getfd", err)
	}
	return c, nil
}

// hand sends fds (the Emperor's ends of a new vassal's channels) to the
// loop; the caller closes its copies.
func (st *spawnTable) hand(fds ...int) error {
	return os.NewSyscallError("sendmsg", unix.Sendmsg(st.send, []byte{byte(len(fds))}, unix.UnixRights(fds...), nil, 0))
}

// errHandoff is a handoff message that is not what the spawner sent.
var errHandoff = errors.New("spawner handoff: message lost")

// take receives the fds the spawner handed over for one spawn, n of them.
// The message is there already: the spawner sent it before the result the
// loop is taking. A message the process's table had no room for arrives
// without its fds: the error then wraps EMFILE.
func (h *handoff) take(n int) ([]int, error) {
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(2*4))
	_, oobn, flags, _, err := unix.Recvmsg(h.recv, b[:], oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errHandoff, os.NewSyscallError("recvmsg", err))
	}
	var fds []int
	if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if flags&unix.MSG_CTRUNC != 0 || len(fds) != n || int(b[0]) != n {
		for _, fd := range fds {
			unix.Close(fd)
		}
		if flags&unix.MSG_CTRUNC != 0 {
			return nil, fmt.Errorf("the Emperor's end of the channel: %w", unix.EMFILE)
		}
		return nil, fmt.Errorf("%w: %d fds, want %d", errHandoff, len(fds), n)
	}
	return fds, nil
}

func (h *handoff) close() {
	if h != nil {
		unix.Close(h.recv)
	}
}

// takeFds takes the fds of p's channels from the handoff socket and checks
// the control channel's against the fd budget (fdbudget.go).
func (e *Emperor) takeFds(p *process) error {
	fds, err := e.handoff.take(p.handed)
	if err != nil {
		return err
	}
	p.handed = 0
	p.ctl = fds[0]
	if len(fds) > 1 {
		p.cfg = fds[1]
	}
	if err := e.budget.check(slices.Max(fds)); err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		p.ctl, p.cfg = -1, -1
		return fmt.Errorf("control channel: %w", err)
	}
	return nil
}
