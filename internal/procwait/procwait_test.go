package procwait_test

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/procwait"
)

func TestWait(t *testing.T) {
	for _, tt := range []struct {
		script   string
		exit     int
		signal   unix.Signal
		signaled bool
		want     string
	}{
		{"exit 3", 3, 0, false, "exit status 3"},
		{"exit 0", 0, 0, false, "exit status 0"},
		{"kill -KILL $$", 0, unix.SIGKILL, true, "signal SIGKILL"},
		{"kill -TERM $$", 0, unix.SIGTERM, true, "signal SIGTERM"},
	} {
		cmd := exec.Command("/bin/sh", "-c", tt.script)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		st, err := procwait.Wait(unix.P_PID, cmd.Process.Pid, unix.WEXITED|unix.WNOWAIT)
		cmd.Wait()
		if err != nil {
			t.Fatalf("%q: %v", tt.script, err)
		}
		if st.Pid != cmd.Process.Pid || st.UID != os.Getuid() || st.Exit != tt.exit || st.Signal != tt.signal || st.Signaled() != tt.signaled || st.String() != tt.want {
			t.Errorf("%q: %+v (%s), want pid %d uid %d, %s", tt.script, st, st, cmd.Process.Pid, os.Getuid(), tt.want)
		}
	}
}

func TestWait_Running(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "read x")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st, err := procwait.Wait(unix.P_PID, cmd.Process.Pid, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT)
	stdin.Close()
	cmd.Wait()
	if err != nil || st.Pid != 0 {
		t.Errorf("a running child: %+v, %v; want pid 0 and no error", st, err)
	}
	_, err = procwait.Wait(unix.P_PID, cmd.Process.Pid, unix.WEXITED)
	if !errors.Is(err, unix.ECHILD) {
		t.Errorf("a reaped child: %v, want ECHILD", err)
	}
	var se *os.SyscallError
	if !errors.As(err, &se) || se.Syscall != "waitid" {
		t.Errorf("error %v is not an *os.SyscallError for waitid", err)
	}
}

func TestStatus_String(t *testing.T) {
	for st, want := range map[procwait.Status]string{
		{Code: procwait.CodeExited, Exit: 127}:            "exit status 127",
		{Code: procwait.CodeKilled, Signal: unix.SIGHUP}:  "signal SIGHUP",
		{Code: procwait.CodeDumped, Signal: unix.SIGSEGV}: "signal SIGSEGV (core dumped)",
		{Code: procwait.CodeKilled, Signal: 77}:           "signal 77",
	} {
		if got := st.String(); got != want {
			t.Errorf("%+v: %q, want %q", st, got, want)
		}
	}
}
