//go:build unix

package regular_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/emperor-dev/emperor/internal/regular"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	file, fifo, loop := filepath.Join(dir, "a.ini"), filepath.Join(dir, "fifo.ini"), filepath.Join(dir, "loop.ini")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop.ini", loop); err != nil {
		t.Fatal(err)
	}
	f, err := regular.Open(file)
	if err != nil {
		t.Fatalf("regular file: %v", err)
	}
	f.Close()
	for path, want := range map[string]string{
		fifo: "open " + fifo + ": not a regular file (fifo)",
		dir:  "open " + dir + ": not a regular file (directory)",
	} {
		_, err := regular.Open(path) // a FIFO with no writer must not block
		if err == nil || err.Error() != want || !errors.Is(err, regular.ErrNotRegular) {
			t.Errorf("Open(%s) = %v, want %q", path, err, want)
		}
	}
	if _, err := regular.Open(loop); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("symlink loop: %v", err)
	}
	if _, err := regular.Open(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}
