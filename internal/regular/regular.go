// Package regular opens files that must be regular files, such as configs,
// so that a FIFO, a device or a directory put where one is expected is
// refused with a reason instead of blocking or confusing the reader.
package regular

import (
	"errors"
	"io/fs"
	"os"
)

// ErrNotRegular is the cause when Open finds something other than a
// regular file; the error's text also names what it found.
var ErrNotRegular = errors.New("not a regular file")

// notRegular is ErrNotRegular with the kind of file found.
type notRegular struct{ kind string }

func (e *notRegular) Error() string { return ErrNotRegular.Error() + " (" + e.kind + ")" }
func (e *notRegular) Unwrap() error { return ErrNotRegular }

// Open opens path for reading. Where the platform has O_NONBLOCK it opens
// with it, so that a FIFO with no writer or a device cannot block it. It
// refuses anything but a regular file (symlinks followed) with an
// *fs.PathError whose Err is ErrNotRegular and names the kind found, as
// "not a regular file (fifo)".
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, openFlags, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: path, Err: &notRegular{kindOf(fi)}}
	}
	return f, nil
}
