package emperor

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFdBudget_Check(t *testing.T) {
	b := &fdBudget{limit: 100, reserve: 32, fixed: 10}
	for fd, short := range map[int]bool{3: false, 67: false, 68: true, 99: true} {
		err := b.check(fd)
		if (err != nil) != short || (err != nil && !fdShort(err)) {
			t.Errorf("check(%d) = %v, want a shortage: %v", fd, err, short)
		}
	}
	if got := b.vassals(); got != 57 {
		t.Errorf("vassals() = %d, want 57", got)
	}
	if err := (&fdBudget{}).check(1 << 20); err != nil {
		t.Errorf("an unknown limit refused fd 1<<20: %v", err)
	}
}

func TestFdShort(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("control channel: %w", os.NewSyscallError("socketpair", unix.EMFILE)): true,
		&os.PathError{Op: "fork/exec", Path: "/bin/x", Err: unix.ENFILE}:                 true,
		fmt.Errorf("init config pipe: %w", os.NewSyscallError("pipe2", unix.EMFILE)):     true,
		&os.PathError{Op: "fork/exec", Path: "/bin/x", Err: unix.ENOENT}:                 false,
		errors.New("too many open files"):                                                false,
	} {
		if got := fdShort(err); got != want {
			t.Errorf("fdShort(%v) = %v, want %v", err, got, want)
		}
	}
}
