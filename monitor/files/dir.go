package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/emperor-dev/emperor/monitor"
)

// NewDir builds the dir://PATH monitor: every vassal config directly inside
// one directory (not recursive). PATH is made absolute and its symlinks are
// resolved once, now, like realpath(3); the process's working directory is
// never changed. The directory must exist.
//
// Vassal names are bare file names; Event.Path is the absolute path of the
// entry inside the directory (a symlink is not resolved in the path).
func NewDir(arg string, opts monitor.Options) (monitor.Monitor, error) {
	uri := "dir://" + arg
	if arg == "" {
		return nil, &openError{uri: uri, msg: "empty directory path"}
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return nil, fmt.Errorf("%s: make absolute: %w", uri, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &openError{uri: uri, msg: "no such directory", err: err}
		}
		return nil, fmt.Errorf("%s: resolve symlinks: %w", uri, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", uri, err)
	}
	if !fi.IsDir() {
		return nil, &openError{uri: uri, msg: "not a directory", err: syscall.ENOTDIR}
	}
	l := layout{baseAbs: real}
	return newFileMonitor("dir://"+real, l, opts), nil
}

// openError is a refusal of a monitor URI, worded for the user; it wraps
// the underlying cause (fs.ErrNotExist for a missing directory).
type openError struct {
	uri, msg string
	err      error
}

func (e *openError) Error() string { return e.uri + ": " + e.msg }
func (e *openError) Unwrap() error { return e.err }
