package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// statusLines runs `emperor status` with args and returns its lines after
// the title, failing the test on a non-zero exit.
func statusLines(t *testing.T, args ...string) []string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"status"}, args...), &out, &errb); code != 0 {
		t.Fatalf("emperor status %q: exit %d: %s", args, code, errb.String())
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")[1:]
}

// listed is the vassal names of status lines, in order.
func listed(lines []string) []string {
	var names []string
	header := false
	for _, l := range lines {
		if strings.HasPrefix(l, "NAME ") {
			header = true
			continue
		}
		if header && l != "" {
			names = append(names, strings.Fields(l)[0])
		}
	}
	return names
}

// TestStatusSummaryAndFilters runs a real Emperor with three healthy
// vassals and one that dies at every start: `emperor status` sums them up
// in one line, and lists only the vassals a name glob, a --state or
// --problems keeps.
func TestStatusSummaryAndFilters(t *testing.T) {
	bin := buildBinaries(t)
	dir := t.TempDir()
	sleepy := []byte("[uwsgi]\nworker-exec = sleep 600\n")
	for _, n := range []string{"shop-a.ini", "shop-b.ini", "blog.ini"} {
		os.WriteFile(filepath.Join(dir, n), sleepy, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "crash.ini"), []byte("[uwsgi]\nchdir = /nonexistent/dir\nworker-exec = sleep 600\n"), 0o644)
	sock := filepath.Join(t.TempDir(), "stats.sock")
	runEmperor(t, bin, "--dir", dir, "--emperor-stats", sock,
		"--binary-path", filepath.Join(bin, "vassal"), "--emperor-cgroup", "false")

	// The summary, once the healthy three are loyal and crash.ini is
	// penalised.
	const want = "4 vassals: 1 waiting, 3 running; 1 not loyal, 1 penalised"
	deadline := time.Now().Add(testkit.Deadline)
	var out []string
	for {
		var o, e bytes.Buffer
		if run(context.Background(), []string{"status", sock}, &o, &e) == 0 {
			out = strings.Split(o.String(), "\n")
			if len(out) > 1 && out[1] == want {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no summary line %q:\n%s", want, strings.Join(out, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := listed(out[1:]); strings.Join(got, " ") != "blog.ini crash.ini shop-a.ini shop-b.ini" {
		t.Errorf("unfiltered status lists %q", got)
	}

	for _, c := range []struct {
		args  []string
		match string
		names string
	}{
		{[]string{"shop-*"}, "2 of 4 vassals match", "shop-a.ini shop-b.ini"},
		{[]string{"--state", "running"}, "3 of 4 vassals match", "blog.ini shop-a.ini shop-b.ini"},
		{[]string{"--state=waiting"}, "1 of 4 vassals match", "crash.ini"},
		{[]string{"--problems"}, "1 of 4 vassals match", "crash.ini"},
		{[]string{"*.ini", "--problems", "--state", "running"}, "0 of 4 vassals match", ""},
	} {
		lines := statusLines(t, append([]string{sock}, c.args...)...)
		if lines[0] != want || lines[1] != c.match {
			t.Errorf("status %q: summary and count %q, want %q and %q", c.args, lines[:2], want, c.match)
		}
		if got := strings.Join(listed(lines), " "); got != c.names {
			t.Errorf("status %q lists %q, want %q", c.args, got, c.names)
		}
	}

	// Filters that could never match, or would be ignored, are refused.
	for _, args := range [][]string{{sock, "--state", "sleeping"}, {sock, "[x"}, {sock, "--json", "--problems"}, {sock, "--state"}} {
		var o, e bytes.Buffer
		if code := run(context.Background(), append([]string{"status"}, args...), &o, &e); code != 2 || e.Len() == 0 {
			t.Errorf("status %q: exit %d, stderr %q; want 2 and a reason", args, code, e.String())
		}
	}
}

// A stats server with stats-http answers with an HTTP head; status reads
// the stats after it.
func TestStatusReadsPastAnHTTPHead(t *testing.T) {
	body := []byte(`{"version":"x"}`)
	raw := append([]byte("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"), body...)
	if got := withoutHTTPHead(raw); string(got) != string(body) {
		t.Errorf("withoutHTTPHead = %q, want %q", got, body)
	}
	if got := withoutHTTPHead(body); string(got) != string(body) {
		t.Errorf("plain JSON changed: %q", got)
	}
}

// runEmperor starts the built Emperor in bin with args for the test; it
// ends with Ragnarok (SIGTERM) at cleanup, and its output is logged when
// the test failed.
func runEmperor(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "emperor"), args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // Ragnarok
		cmd.Wait()
		if t.Failed() {
			t.Logf("Emperor output:\n%s", log.String())
		}
	})
	return cmd
}

// emperor-wait-for-command from the command line: a new vassal stays
// disabled until `emperor start`, one on the ignore list starts at once.
func TestWaitForCommandFromTheCommandLine(t *testing.T) {
	bin := buildBinaries(t)
	dir := t.TempDir()
	sleepy := []byte("[uwsgi]\nworker-exec = sleep 600\n")
	for _, n := range []string{"lazy.ini", "eager.ini"} {
		os.WriteFile(filepath.Join(dir, n), sleepy, 0o644)
	}
	rundir := t.TempDir()
	stats, csock := filepath.Join(rundir, "stats.sock"), filepath.Join(rundir, "command.sock")
	runEmperor(t, bin, "--dir", dir, "--emperor-stats", stats, "--emperor-command-socket", csock,
		"--emperor-wait-for-command", "--emperor-wait-for-command-ignore", "eager.ini",
		"--binary-path", filepath.Join(bin, "vassal"), "--emperor-cgroup", "false")
	waitSummary := func(want string) {
		t.Helper()
		deadline := time.Now().Add(testkit.Deadline)
		for {
			lines := statusLinesQuiet(stats)
			if len(lines) > 1 && strings.HasPrefix(lines[1], want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no summary line %q:\n%s", want, strings.Join(lines, "\n"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitSummary("2 vassals: 1 running, 1 disabled;")
	if lines := statusLines(t, stats, "--state", "disabled"); !strings.Contains(strings.Join(lines, "\n"), "lazy.ini") {
		t.Errorf("lazy.ini is not the disabled one:\n%s", strings.Join(lines, "\n"))
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"start", "lazy.ini", "--socket", csock}, &out, &errb); code != 0 {
		t.Fatalf("emperor start lazy.ini: exit %d: %s%s", code, out.String(), errb.String())
	}
	waitSummary("2 vassals: 2 running;")
}

// statusLinesQuiet is `emperor status SOCK`'s lines, or none while it fails.
func statusLinesQuiet(sock string) []string {
	var o, e bytes.Buffer
	if run(context.Background(), []string{"status", sock}, &o, &e) != 0 {
		return nil
	}
	return strings.Split(o.String(), "\n")
}
