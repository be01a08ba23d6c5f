package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// serveAbstract answers every connection to the abstract socket address
// (Go's spelling: "@name", or "@name\x00" for uWSGI's) with stats.
func serveAbstract(t *testing.T, addr string, stats []byte) {
	t.Helper()
	serveOn(t, addr, stats)
}

// `emperor status @name` reads stats from an abstract socket bound either
// as uWSGI binds "@name" (its name ends with a NUL) or as everyone else
// does.
func TestStatusOnAbstractSocket(t *testing.T) {
	stats := []byte(`{"pid": 42, "emperor": ["/etc/vassals"], "vassals": [{"id": "app.ini", "pid": 7, "state": "running", "loyal": 1, "monitor": "/etc/vassals"}], "blacklist": []}`)
	for _, uwsgiSpelling := range []bool{true, false} {
		name := fmt.Sprintf("emperor-status-test-%d-%t", os.Getpid(), uwsgiSpelling)
		addr := "@" + name
		if uwsgiSpelling {
			addr += "\x00"
		}
		serveAbstract(t, addr, stats)
		for _, arg := range []string{"@" + name, `\0` + name} {
			var out, errb bytes.Buffer
			if code := run(context.Background(), []string{"status", arg}, &out, &errb); code != 0 {
				t.Fatalf("emperor status %q (uWSGI's spelling %t): exit %d: %s", arg, uwsgiSpelling, code, errb.String())
			}
			if !strings.Contains(out.String(), "Emperor pid 42 governing 1 vassals (/etc/vassals)") || !strings.Contains(out.String(), "app.ini") {
				t.Errorf("emperor status %q:\n%s", arg, out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"status", "@emperor-status-test-nobody-there"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "@emperor-status-test-nobody-there") || strings.ContainsRune(errb.String(), 0) {
		t.Errorf("status of an abstract socket nobody binds: exit %d, %q", code, errb.String())
	}
}

// `emperor status` reads a real uWSGI Emperor's stats, here on an abstract
// socket, and names its vassals' state from what uWSGI reports.
func TestStatusOfAUWSGIEmperor(t *testing.T) {
	uwsgi := testenv.UWSGI(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.py"), []byte("def application(env, start_response):\n    start_response('200 OK', [])\n    return [b'hi']\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.ini"), []byte("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:0\nwsgi-file = app.py\nmaster = true\nprocesses = 1\n"), 0o644)
	addr := fmt.Sprintf("@emperor-status-uwsgi-%d", os.Getpid())
	cmd := exec.Command(uwsgi, "--emperor", dir, "--emperor-stats", addr, "--emperor-freq", "1")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT) // Ragnarok
		select {
		case <-done:
		case <-time.After(testkit.Deadline):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group the test made
			<-done
		}
		if t.Failed() {
			t.Logf("uWSGI Emperor output:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(testkit.Deadline)
	var out, errb bytes.Buffer
	for {
		out.Reset()
		errb.Reset()
		code := run(context.Background(), []string{"status", addr}, &out, &errb)
		if code == 0 && strings.Contains(out.String(), "accepting") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("emperor status %s never showed app.ini accepting: exit %d\n%s%s", addr, code, out.String(), errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("Emperor pid %d governing 1 vassals (%s)", cmd.Process.Pid, dir)) {
		t.Errorf("emperor status of uWSGI's Emperor:\n%s", out.String())
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "app.ini ") && !strings.Contains(l, "accepting") {
			t.Errorf("app.ini line %q", l)
		}
	}
}
