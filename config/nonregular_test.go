//go:build unix

package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/internal/regular"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// within runs f and fails the test if it does not return within
// testkit.Deadline: a loader must never block.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(testkit.Deadline):
		t.Fatalf("%s blocked", what)
		return nil
	}
}

// fifo makes a FIFO at path. If a test blocks on it anyway, the cleanup
// opens its other end, so that the blocked reader returns.
func fifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}

// Every way a config names another file refuses a FIFO at once, with an
// error naming the FIFO and the file and line that named it.
func TestLoad_RefusesFIFO(t *testing.T) {
	dir := tempDir(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, n := range []string{"fifo.ini", "fifo.xml", "fifo.yaml", "fifo.json"} {
		fifo(t, p(n))
	}
	cases := []struct{ key, file, section string }{
		{"include", "fifo.ini", ""},
		{"include", "fifo.ini", ":app"},
		{"ini", "fifo.ini", ""},
		{"xml", "fifo.xml", ""},
		{"yaml", "fifo.yaml", ""},
		{"json", "fifo.json", ""},
		{"inherit", "fifo.ini", ""},
	}
	for _, tc := range cases {
		t.Run(tc.key+tc.section, func(t *testing.T) {
			writeFiles(t, dir, map[string]string{"main.ini": "[uwsgi]\nmaster = true\n" + tc.key + " = " + p(tc.file) + tc.section + "\n"})
			l, _ := newLoader()
			err := within(t, "Load", func() error { _, err := l.Load(config.INI, p("main.ini")); return err })
			want := p("main.ini") + ":3: " + tc.key + ": cannot read " + p(tc.file) + ": not a regular file (fifo)"
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant   %s", err, want)
			}
		})
	}

	t.Run("main config", func(t *testing.T) {
		l, _ := newLoader()
		err := within(t, "Load", func() error { _, err := l.Load(config.INI, p("fifo.ini")); return err })
		if want := p("fifo.ini") + ": cannot read " + p("fifo.ini") + ": not a regular file (fifo)"; err == nil || err.Error() != want {
			t.Errorf("err = %v, want %s", err, want)
		}
	})

	t.Run("@file", func(t *testing.T) {
		writeFiles(t, dir, map[string]string{"main.ini": "[uwsgi]\nsecret = @(" + p("fifo.ini") + ")\n"})
		l, _ := newLoader()
		err := within(t, "Load and Resolve", func() error {
			c, err := l.Load(config.INI, p("main.ini"))
			if err != nil {
				return err
			}
			return c.Resolve(l)
		})
		want := p("main.ini") + ":2: secret: cannot read " + p("fifo.ini") + ": not a regular file (fifo)"
		if err == nil || err.Error() != want || !errors.Is(err, regular.ErrNotRegular) {
			t.Errorf("err = %v\nwant   %s", err, want)
		}
	})
}

// A directory named like a config is refused as such.
func TestLoad_RefusesDirectory(t *testing.T) {
	dir := tempDir(t)
	sub := filepath.Join(dir, "sub.ini")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"main.ini": "[uwsgi]\ninclude = " + sub + "\n"})
	l, _ := newLoader()
	_, err := l.Load(config.INI, filepath.Join(dir, "main.ini"))
	want := filepath.Join(dir, "main.ini") + ":2: include: cannot read " + sub + ": not a regular file (directory)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant   %s", err, want)
	}
}
