package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// openDir is a temp dir every user may enter, as the dirs of the Emperor's
// binaries and configs must be once it runs as another user.
func openDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// emperorProc is a running built Emperor and its log lines.
type emperorProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	log   *bytes.Buffer
}

func startEmperor(t *testing.T, bin string, args ...string) *emperorProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "emperor"), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &emperorProc{t: t, cmd: cmd, lines: make(chan string, 1024), log: &bytes.Buffer{}}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			e.lines <- sc.Text()
		}
		close(e.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(testkit.Deadline):
			cmd.Process.Kill()
			<-done
		}
	})
	return e
}

// waitLine returns the first log line containing what, failing the test
// when the Emperor exits first or after testkit.Deadline.
func (e *emperorProc) waitLine(what string) string {
	e.t.Helper()
	deadline := time.After(testkit.Deadline)
	for {
		select {
		case l, ok := <-e.lines:
			if !ok {
				e.t.Fatalf("emperor exited before logging %q; its log:\n%s", what, e.log)
			}
			e.log.WriteString(l + "\n")
			if strings.Contains(l, what) {
				return l
			}
		case <-deadline:
			e.t.Fatalf("no log line with %q; the log:\n%s", what, e.log)
		}
	}
}

// procStatus reads field (Uid, Gid, CapEff, Umask, ...) of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return ""
}

func vassalPid(t *testing.T, line string) int {
	t.Helper()
	pid, err := strconv.Atoi(fieldValue(line, "pid"))
	if err != nil {
		t.Fatalf("no pid in %q", line)
	}
	return pid
}

// uid, gid and cap as uWSGI's Emperor applies them: the Emperor drops to
// the user keeping only the listed capabilities, its vassals run as that
// user with none; max-fd and umask reach the vassals, chdir the Emperor,
// and flock keeps a second Emperor out, across the drop.
func TestUIDGIDCapAndProcessOptions(t *testing.T) {
	testenv.Root(t)
	bin := openDir(t)
	buildInto(t, bin)
	dir, cwd := openDir(t), openDir(t)
	os.WriteFile(filepath.Join(dir, "app.ini"), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	lock := filepath.Join(openDir(t), "emperor.lock")
	os.WriteFile(lock, nil, 0o644) // root's, not writable by nobody: taken before the drop
	e := startEmperor(t, bin, "--dir", dir, "--uid", "nobody", "--gid", "65534", "--cap", "setuid,setgid",
		"--max-fd", "4321", "--umask", "027", "--chdir", cwd, "--flock", lock, "--master", "--workers", "2")
	e.waitLine(`msg="option ignored: this Emperor does not serve requests itself" option=master`)
	e.waitLine(`msg="privileges dropped" uid=65534 gid=65534 caps=setgid,setuid`)
	vpid := vassalPid(t, e.waitLine(`msg="vassal running"`))
	if n := strings.Count(e.log.String(), "option=master"); n != 1 {
		t.Errorf("%d lines about master, want one (the re-executed Emperor must not repeat them):\n%s", n, e.log)
	}
	emp := e.cmd.Process.Pid
	for pid, want := range map[int]string{emp: "00000000000000c0", vpid: "0000000000000000"} {
		if got := procStatus(t, pid, "Uid"); got != "65534 65534 65534 65534" {
			t.Errorf("pid %d: Uid %s", pid, got)
		}
		if got := procStatus(t, pid, "Gid"); got != "65534 65534 65534 65534" {
			t.Errorf("pid %d: Gid %s", pid, got)
		}
		if got := procStatus(t, pid, "Groups"); got != "65534" {
			t.Errorf("pid %d: Groups %q, want only nogroup", pid, got)
		}
		if got := procStatus(t, pid, "CapEff"); got != want {
			t.Errorf("pid %d: CapEff %s, want %s", pid, got, want)
		}
	}
	if got := procStatus(t, vpid, "CapPrm") + " " + procStatus(t, vpid, "CapAmb"); got != "0000000000000000 0000000000000000" {
		t.Errorf("vassal CapPrm, CapAmb: %s", got)
	}
	if got := procStatus(t, vpid, "Umask"); got != "0027" {
		t.Errorf("vassal Umask %s, want 0027", got)
	}
	limits, _ := os.ReadFile("/proc/" + strconv.Itoa(vpid) + "/limits")
	if !strings.Contains(strings.Join(strings.Fields(string(limits)), " "), "Max open files 4321 4321 files") {
		t.Errorf("vassal limits:\n%s", limits)
	}
	if got, _ := os.Readlink("/proc/" + strconv.Itoa(emp) + "/cwd"); got != cwd {
		t.Errorf("Emperor cwd %q, want %q", got, cwd)
	}
	out, err := exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--flock", lock).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "flock "+lock+": locked by another instance (pid "+strconv.Itoa(emp)+")") {
		t.Errorf("second Emperor on the same flock: %v\n%s", err, out)
	}
}

// The paranoid tyrant (reference 6.2): an Emperor that dropped to nobody
// keeping setuid and setgid still runs each vassal as its config's owner,
// which gets no capability; without them it refuses to start, saying why.
func TestParanoidTyrant(t *testing.T) {
	testenv.Root(t)
	bin := openDir(t)
	buildInto(t, bin)
	dir := openDir(t)
	cfg := filepath.Join(dir, "app.ini")
	os.WriteFile(cfg, []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	if err := os.Chown(cfg, 4242, 4343); err != nil {
		t.Fatal(err)
	}
	e := startEmperor(t, bin, "--dir", dir, "--uid", "65534", "--gid", "65534", "--cap", "setgid,setuid", "--emperor-tyrant")
	vpid := vassalPid(t, e.waitLine(`msg="vassal running"`))
	if got := procStatus(t, vpid, "Uid") + " / " + procStatus(t, vpid, "Gid"); got != "4242 4242 4242 4242 / 4343 4343 4343 4343" {
		t.Errorf("tyrant vassal runs as %s", got)
	}
	if got := procStatus(t, vpid, "CapEff") + " " + procStatus(t, vpid, "CapPrm"); got != "0000000000000000 0000000000000000" {
		t.Errorf("tyrant vassal capabilities: %s", got)
	}

	out, err := exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--uid", "65534", "--gid", "65534", "--emperor-tyrant").CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "cap = setuid,setgid") {
		t.Errorf("tyrant without cap: exit %d\n%s", code, out)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// buildInto builds emperor and vassal into bin.
func buildInto(t *testing.T, bin string) {
	t.Helper()
	for name, pkg := range map[string]string{"emperor": ".", "vassal": "../vassal"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
}

// flock keeps a second Emperor out, naming the holder; flock-wait waits
// for the first to go, then starts.
func TestFlockAndFlockWait(t *testing.T) {
	bin := t.TempDir()
	buildInto(t, bin)
	dir := t.TempDir()
	lock := filepath.Join(t.TempDir(), "emperor.lock")
	os.WriteFile(lock, nil, 0o644)
	first := startEmperor(t, bin, "--dir", dir, "--flock", lock)
	first.waitLine(`msg="lock taken" flock=` + lock)
	first.waitLine(`msg="initial scan complete"`)
	out, err := exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--flock", lock).CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "locked by another instance (pid "+strconv.Itoa(first.cmd.Process.Pid)+")") {
		t.Errorf("second Emperor with flock: exit %d\n%s", code, out)
	}
	second := startEmperor(t, bin, "--dir", dir, "--flock-wait", lock)
	second.waitLine(`msg="taking the lock, waiting while another holds it"`)
	first.cmd.Process.Signal(syscall.SIGTERM)
	second.waitLine(`msg="lock taken" flock-wait=` + lock)
	second.waitLine(`msg="initial scan complete"`)
	out, err = exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--flock", filepath.Join(dir, "missing")).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "flock: open "+filepath.Join(dir, "missing")) {
		t.Errorf("flock of a missing file: %v\n%s", err, out)
	}
}

// stats, uWSGI's instance stats server, serves the Emperor's stats when
// emperor-stats is not set.
func TestStatsServesTheEmperorsStats(t *testing.T) {
	bin := t.TempDir()
	buildInto(t, bin)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.ini"), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	sock := filepath.Join(t.TempDir(), "stats.sock")
	e := startEmperor(t, bin, "--dir", dir, "--stats", sock)
	e.waitLine(`msg="serving the Emperor's stats on this address" option=stats`)
	e.waitLine(`msg="vassal running"`)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"status", sock}, &out, &errb); code != 0 || !strings.Contains(out.String(), "app.ini") {
		t.Errorf("emperor status %s: exit %d\n%s%s", sock, code, out.String(), errb.String())
	}
}

// An Emperor that drops to nobody binds its stats on a port below 1024 and
// its command socket in a directory only root may enter before the drop,
// as uWSGI binds its sockets, and serves on both as nobody.
func TestListenersBoundBeforeTheDrop(t *testing.T) {
	testenv.Root(t)
	bin := openDir(t)
	buildInto(t, bin)
	dir := openDir(t)
	os.WriteFile(filepath.Join(dir, "app.ini"), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(private, "command.sock")
	// A privileged port on a loopback address of this test process's own
	// (all of 127.0.0.0/8 is loopback): a second test run beside this one
	// picks another address, so the two never collide.
	const port = 700
	pid := os.Getpid()
	stats := fmt.Sprintf("127.77.%d.%d:%d", (pid>>8)&255, pid&255, port)
	if l, err := net.Listen("tcp", stats); err != nil {
		t.Fatalf("%s is taken: %v", stats, err)
	} else {
		l.Close()
	}
	e := startEmperor(t, bin, "--dir", dir, "--uid", "nobody", "--gid", "65534",
		"--emperor-stats", stats, "--emperor-command-socket", sock)
	e.waitLine(`msg="privileges dropped" uid=65534`)
	e.waitLine(`msg="vassal running"`)
	if got := procStatus(t, e.cmd.Process.Pid, "CapEff"); got != "0000000000000000" {
		t.Errorf("the Emperor kept capabilities %s; binding port %d needs none after the drop", got, port)
	}
	var out []byte
	var err error
	for deadline := time.Now().Add(testkit.Deadline); ; time.Sleep(50 * time.Millisecond) {
		out, err = exec.Command(filepath.Join(bin, "emperor"), "status", stats).CombinedOutput()
		if err == nil && strings.Contains(string(out), "app.ini") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("emperor status %s of nobody's Emperor: %v\n%s", stats, err, out)
		}
	}
	out, err = exec.Command(filepath.Join(bin, "emperor"), "rescan", "--socket", sock).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rescanning") {
		t.Errorf("command socket %s: %v\n%s", sock, err, out)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("the command socket should be nobody's: %v", err)
	}
}

// logfile-chown hands the log file to the user the Emperor drops to, so
// the dropped Emperor (and log-reopen) can still write it.
func TestLogfileChownHandsTheLogToTheUser(t *testing.T) {
	testenv.Root(t)
	bin := openDir(t)
	buildInto(t, bin)
	dir := openDir(t)
	os.WriteFile(filepath.Join(dir, "app.ini"), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	logfile := filepath.Join(openDir(t), "emperor.log")
	e := startEmperor(t, bin, "--dir", dir, "--uid", "nobody", "--gid", "65534",
		"--logto", logfile, "--logfile-chown")
	for deadline := time.Now().Add(testkit.Deadline); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(logfile)
		if strings.Contains(string(b), `msg="vassal running"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dropped Emperor never logged a running vassal to %s:\n%s\n%s", logfile, b, e.log)
		}
	}
	fi, err := os.Stat(logfile)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("%s is owned by %d:%d, want nobody's 65534:65534", logfile, st.Uid, st.Gid)
	}
}
