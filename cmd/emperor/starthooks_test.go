package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestHookActionsDoWhatUWSGIsDo runs each supported action on files.
func TestHookActionsDoWhatUWSGIsDo(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := syscall.Mkfifo(p("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	var h startHooks
	h.options()
	for _, v := range []string{
		"mkdir:" + p("d"),
		"write:" + p("w") + " one two",
		"writen:" + p("wn") + " line",
		"append:" + p("w") + " three",
		"appendn:" + p("an") + " x",
		"appendn:" + p("an"),
		"create:" + p("c"),
		"chmod:" + p("c") + " 0600",
		"sticky:" + p("d"),
		"chown2:" + p("c") + " " + itoa(os.Getuid()) + " " + itoa(os.Getgid()),
		"putenv:EMPEROR_HOOK_TEST=set",
		"exec:echo exec >> " + p("e"),
		"safeexec:exit 4",
		"!write:" + p("private") + " secret",
		"writefifo:" + p("fifo") + " nobody reads it", // no reader: uWSGI goes on
		"unlink:" + p("wn"),
	} {
		if err := h.addHook("as user")(v); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := h.run(log, "as user", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Unsetenv("EMPEROR_HOOK_TEST") })
	read := func(name string) string { b, _ := os.ReadFile(p(name)); return string(b) }
	for name, want := range map[string]string{"w": "one twothree", "an": "x\n\n", "e": "exec\n", "private": "secret"} {
		if got := read(name); got != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	if fi, err := os.Stat(p("c")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("chmod: %v %v", fi, err)
	}
	if fi, err := os.Stat(p("d")); err != nil || !fi.IsDir() || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("mkdir + sticky: %v %v", fi, err)
	}
	if _, err := os.Stat(p("wn")); !os.IsNotExist(err) {
		t.Errorf("unlink left %s: %v", p("wn"), err)
	}
	if os.Getenv("EMPEROR_HOOK_TEST") != "set" {
		t.Errorf("putenv did not set the Emperor's environment")
	}

	// A failing action ends the phase with an error naming it; at atexit
	// every hook still runs.
	var f startHooks
	f.options()
	f.addHook("in-jail")("write:" + p("no/such") + " x")
	f.addHook("in-jail")("create:" + p("never"))
	if err := f.run(log, "in-jail", time.Second); err == nil {
		t.Errorf("a failing write hook passed")
	}
	if _, err := os.Stat(p("never")); err == nil {
		t.Errorf("the hook after a failed one ran")
	}
	f.addHook("atexit")("write:" + p("no/such") + " x")
	f.addHook("atexit")("create:" + p("atexit"))
	if err := f.run(log, "atexit", time.Second); err == nil {
		t.Errorf("a failing atexit hook was not reported")
	}
	if _, err := os.Stat(p("atexit")); err != nil {
		t.Errorf("atexit stopped at the first failure: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
