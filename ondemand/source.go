// Package ondemand finds and binds the socket of an on-demand vassal: the
// Emperor holds the socket, and spawns the vassal (with the socket on its
// fd 0) only when a connection arrives (reference 9.4).
//
// This file says where the socket's name comes from; listen_linux.go binds
// it. The Emperor does not use the package yet: the on-demand idle state is
// issue 16's next step.
package ondemand

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// maxName bounds what is read of a socket name's source: a name is a path
// or an address, far shorter.
const maxName = 4096

// Name is the socket name in b: its bytes up to the first control byte
// (below 32) or DEL. uWSGI compares with signed chars, so any byte above 127
// ended its names and UTF-8 paths were cut (bug B37); here they belong to
// the name.
func Name(b []byte) string {
	end := bytes.IndexFunc(b, func(r rune) bool { return r < 32 || r == 127 })
	if end < 0 {
		end = len(b)
	}
	return string(b[:end])
}

// FromExtension is emperor-on-demand-extension: the name is in the file
// config+ext ("app.ini.socket"). A missing file or an empty name means the
// vassal is not on-demand ("", nil).
func FromExtension(config, ext string) (string, error) {
	f, err := os.Open(config + ext)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("on-demand socket file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxName))
	if err != nil {
		return "", fmt.Errorf("on-demand socket file %s: %w", f.Name(), err)
	}
	return Name(b), nil
}

// FromDirectory is emperor-on-demand-directory: the UNIX socket
// DIR/<config's base name up to its last '.'>.socket.
func FromDirectory(dir, config string) string {
	base := filepath.Base(config)
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	return filepath.Join(dir, base+".socket")
}

// FromExec is emperor-on-demand-exec: the name is what the command prints.
// The command runs under /bin/sh with the config's path as its argument
// ($1), never spliced into the command's text as uWSGI does (a file name
// is not shell code, bug B38), and is killed after timeout (uWSGI waits
// for it with its loop stopped). Empty output means not on-demand. It
// blocks its caller: call it off any loop.
func FromExec(ctx context.Context, command, config string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command+` "$1"`, "emperor-on-demand-exec", config)
	cmd.Stdin = nil
	cmd.WaitDelay = time.Second // a grandchild holding stdout does not hold us
	var out limited
	cmd.Stdout = &out
	var stderr limited
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return "", fmt.Errorf("on-demand exec %q %s: no answer within %v", command, config, timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(string(stderr.b))
		if msg != "" {
			return "", fmt.Errorf("on-demand exec %q %s: %w: %s", command, config, err, msg)
		}
		return "", fmt.Errorf("on-demand exec %q %s: %w", command, config, err)
	}
	return Name(out.b), nil
}

// limited keeps the first maxName bytes written to it and drops the rest.
type limited struct{ b []byte }

func (l *limited) Write(p []byte) (int, error) {
	if room := maxName - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
