package emperor

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// A vassal's config swapped for a FIFO cannot block the spawner thread,
// which reads the config's head for cgroup limits.
func TestReadHead_NeverBlocks(t *testing.T) {
	dir := t.TempDir()
	file, fifo := filepath.Join(dir, "app.ini"), filepath.Join(dir, "fifo.ini")
	if err := os.WriteFile(file, []byte("[emperor]\ncgroup-pids = 10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // frees a reader blocked on the FIFO
		if f, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	if got := string(readHead(file, 1<<20)); got != "[emperor]\ncgroup-pids = 10\n" {
		t.Errorf("regular file: %q", got)
	}
	for _, path := range []string{fifo, dir} {
		done := make(chan []byte, 1)
		go func() { done <- readHead(path, 1<<20) }()
		select {
		case b := <-done:
			if b != nil {
				t.Errorf("%s read as %q, want nothing", path, b)
			}
		case <-time.After(testkit.Deadline):
			t.Fatalf("readHead(%s) blocked", path)
		}
	}
}
