// Package procwait reads how a child process ended, as waitid(2) reports it
// in a siginfo_t: the one decoder of that structure, used by the Emperor
// (for vassals) and by the vassal runtime (for workers, daemons and
// orphans).
package procwait

import (
	"errors"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The si_code values of SIGCHLD that waitid(WEXITED) reports (the kernel's
// CLD_EXITED, CLD_KILLED and CLD_DUMPED; x/sys does not name them).
const (
	CodeExited = 1 // the child called exit: Status.Exit holds its code
	CodeKilled = 2 // a signal killed it: Status.Signal holds the signal
	CodeDumped = 3 // a signal killed it and it dumped core
)

// Status is how a child ended.
type Status struct {
	Pid  int // si_pid; 0 when WNOHANG found no child that had exited
	UID  int // si_uid: the child's real uid
	Code int // si_code: CodeExited, CodeKilled or CodeDumped
	// Exit is the exit code when the child exited (0 when it was killed);
	// Signal is the signal that killed it (0 when it exited).
	Exit   int
	Signal unix.Signal
}

// Signaled reports whether a signal killed the child.
func (s Status) Signaled() bool { return s.Code == CodeKilled || s.Code == CodeDumped }

// String describes the end for logs: "exit status 3", "signal SIGKILL",
// "signal SIGSEGV (core dumped)".
func (s Status) String() string {
	if !s.Signaled() {
		return "exit status " + strconv.Itoa(s.Exit)
	}
	out := "signal " + unix.SignalName(s.Signal)
	if out == "signal " {
		out += strconv.Itoa(int(s.Signal))
	}
	if s.Code == CodeDumped {
		out += " (core dumped)"
	}
	return out
}

// Decode reads a siginfo_t that waitid filled. unix.Siginfo keeps the
// SIGCHLD fields opaque: after si_signo, si_errno and si_code (three
// int32s) comes a union aligned to the pointer size, which starts with
// si_pid, si_uid and si_status (three 32-bit fields).
func Decode(info *unix.Siginfo) Status {
	ptr := unsafe.Sizeof(uintptr(0))
	union := unsafe.Add(unsafe.Pointer(info), (12+ptr-1)&^(ptr-1))
	field := func(i uintptr) int { return int(*(*int32)(unsafe.Add(union, 4*i))) }
	s := Status{Pid: field(0), UID: int(uint32(field(1))), Code: int(info.Code)}
	if s.Signaled() {
		s.Signal = unix.Signal(field(2))
	} else {
		s.Exit = field(2)
	}
	return s
}

// Wait calls waitid(idtype, id, options), again when a signal interrupts
// it, and decodes what it reports. With WNOHANG (or on a non-blocking
// pidfd, which fails with EAGAIN instead) a child that has not exited
// gives a Status with Pid 0. Errors are *os.SyscallError.
func Wait(idtype, id, options int) (Status, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(idtype, id, &info, options, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return Status{}, os.NewSyscallError("waitid", err)
		}
		return Decode(&info), nil
	}
}
