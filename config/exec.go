package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// DefaultExecTimeout bounds an exec://COMMAND config source when
// Loader.ExecTimeout is zero.
const DefaultExecTimeout = 30 * time.Second

// The exec://COMMAND config source: uWSGI runs COMMAND through /bin/sh -c
// and reads the config from its standard output until EOF, with no time
// limit and no check of its exit status. An Emperor with
// emperor-magic-exec hands its vassals exec://CONFIG for a config file
// that is executable.
//
// Ours:
//   - runs COMMAND without a shell when it is plain words (no quote, no
//     $, no redirection, ...), split at white space, the first looked up
//     in PATH when it has no '/'; any other COMMAND goes to /bin/sh -c, as
//     uWSGI does;
//   - stdin is /dev/null, stderr is kept (the tail of it ends up in the
//     error); it runs in a process group of its own, killed as a whole
//     when it overruns Loader.ExecTimeout (default 30 s);
//   - its output is bounded by the Loader's byte budget (MaxBytes);
//   - a command that cannot start, exits non-zero, is killed or overruns
//     is an error naming the command, never a silently empty config.

// shellChars are the characters that make a command need a shell.
const shellChars = "\"'`\\$&|;<>()*?[]{}~#!=\n\t"

// runConfigCommand runs command and returns its standard output, at most
// limit bytes.
func (r *run) runConfigCommand(command string, limit int64) ([]byte, error) {
	if r.l.Exec != nil {
		b, err := r.l.Exec(command)
		if err != nil {
			return nil, err
		}
		if int64(len(b)) > limit {
			return nil, errTooLarge
		}
		return b, nil
	}
	if strings.TrimSpace(command) == "" {
		return nil, errors.New("no command given")
	}
	timeout := r.l.ExecTimeout
	if timeout <= 0 {
		timeout = DefaultExecTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var cmd *exec.Cmd
	if strings.ContainsAny(command, shellChars) {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", command)
	} else {
		f := strings.Fields(command)
		cmd = exec.CommandContext(ctx, f[0], f[1:]...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // it and whatever it started
	}
	cmd.WaitDelay = time.Second                       // a grandchild holding the pipes does not hold us
	out := &limitedBuffer{limit: limit, over: cancel} // too much: kill it now, not at the timeout
	errTail := &tailBuffer{max: 512}
	cmd.Stdout, cmd.Stderr = out, errTail
	err := cmd.Run()
	switch {
	case out.overrun:
		return nil, errTooLarge
	case ctx.Err() == context.DeadlineExceeded:
		return nil, fmt.Errorf("still running after %s: killed%s", timeout, errTail.say())
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%v%s", ee.ProcessState, errTail.say())
		}
		return nil, err
	}
	return out.buf.Bytes(), nil
}

// limitedBuffer keeps at most limit bytes; past that it calls over and
// fails the write.
type limitedBuffer struct {
	buf     bytes.Buffer // not embedded: its ReadFrom would bypass Write
	limit   int64
	over    func()
	overrun bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if int64(b.buf.Len()+len(p)) > b.limit {
		if !b.overrun {
			b.overrun = true
			b.over()
		}
		return 0, io.ErrShortWrite
	}
	return b.buf.Write(p)
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

// say is ": LAST LINE" of what was written, or "" when nothing was.
func (b *tailBuffer) say() string {
	s := strings.TrimSpace(string(b.buf))
	if s == "" {
		return ""
	}
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return ": " + s
}
