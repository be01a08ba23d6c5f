package emperortest

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// WaitExit waits until the process pid, which need not be a child of the
// test, has exited (a zombie counts), failing the test after
// testkit.Deadline. It waits on a pidfd, which turns readable at the exit.
func WaitExit(t testing.TB, pid int, what string) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return // already reaped
	}
	if err != nil {
		t.Fatalf("%s (pid %d): pidfd_open: %v", what, pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(testkit.Deadline.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("%s (pid %d): poll: %v", what, pid, err)
		}
		if n == 0 {
			t.Fatalf("%s (pid %d) still alive after %s", what, pid, testkit.Deadline)
		}
		return
	}
}
