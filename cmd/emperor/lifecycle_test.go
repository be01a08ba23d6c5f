package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// waitFile waits until the file at path holds every one of parts and
// returns its text; it fails the test after testkit.Deadline.
func waitFile(t *testing.T, path string, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(testkit.Deadline)
	for {
		b, _ := os.ReadFile(path)
		if containsEvery(string(b), parts) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %q; it holds:\n%s", path, parts, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsEvery(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// lineWith is the last line of text holding every one of parts.
func lineWith(text string, parts ...string) string {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if containsEvery(lines[i], parts) {
			return lines[i]
		}
	}
	return ""
}

// readPid reads a pidfile.
func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pidfile: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pidfile %s holds %q", path, b)
	}
	return pid
}

// waitExit waits for cmd to exit and returns its error.
func waitExit(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(testkit.Deadline):
		cmd.Process.Kill()
		t.Fatalf("the Emperor did not exit within %s", testkit.Deadline)
		return nil
	}
}

// killAtEnd SIGKILLs pid when the test ends, should it fail midway.
func killAtEnd(t *testing.T, pid int) {
	t.Cleanup(func() {
		if testkit.Running(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// TestLogtoAppendsDatesAndReopens: logto appends to the file (created
// 0640) what the Emperor and its vassals write, log-date's strftime format
// is each line's time, and with log-reopen a SIGHUP after logrotate's
// rename writes to a new file by the old name.
func TestLogtoAppendsDatesAndReopens(t *testing.T) {
	bin := buildBinaries(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sleepy.ini"), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	logs := t.TempDir()
	logfile := filepath.Join(logs, "emperor.log")
	os.WriteFile(logfile, []byte("a line from before\n"), 0o600)
	fresh := filepath.Join(logs, "fresh.log")
	cmd := exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--logto", logfile,
		"--log-date=%Y-%m-%d day %j", "--log-reopen") // log-date's value only after "=", as uWSGI's getopt reads it
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd.Process.Pid)
	text := waitFile(t, logfile, `msg="vassal running"`, `msg="worker started"`) // the vassal's own line too
	if !strings.HasPrefix(text, "a line from before\n") {
		t.Errorf("logto did not append: the file starts %q", text[:min(len(text), 60)])
	}
	now := time.Now()
	want := `time="` + now.Format("2006-01-02") + " day " + strconv.Itoa(now.YearDay())
	if l := lineWith(text, `msg="vassal running"`); !strings.HasPrefix(l, want) {
		// The day may turn while the test runs.
		if y := now.Add(-time.Minute); !strings.HasPrefix(l, `time="`+y.Format("2006-01-02")) {
			t.Errorf("log-date line %q, want it to start %q", l, want)
		}
	}
	// A file logto creates is 0640 (less the umask).
	cmd2 := exec.Command(filepath.Join(bin, "emperor"), "--dir", t.TempDir(), "--logto", fresh)
	if err := cmd2.Start(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd2.Process.Pid)
	waitFile(t, fresh, `msg="the Emperor is ruling"`)
	cmd2.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd2); err != nil {
		t.Errorf("second Emperor: %v", err)
	}
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o640&^os.FileMode(umask) {
		t.Errorf("logto created %v (%v), want mode %o", fi.Mode(), err, 0o640&^umask)
	}

	// logrotate: rename, then SIGHUP.
	rotated := logfile + ".1"
	if err := os.Rename(logfile, rotated); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitFile(t, logfile, `msg="log-reopen: log reopened"`, `msg="SIGHUP: reloading every vassal"`)
	if old := waitFile(t, rotated, "log-reopen: reopening"); strings.Contains(old, "log reopened") {
		t.Errorf("the rotated file got lines after the reopen")
	}
	// A vassal spawned after the reopen writes to the new file: the
	// spawner, whose fd table is its own, takes fds 1 and 2 as they are
	// now at each spawn.
	os.WriteFile(filepath.Join(dir, "late.ini"), []byte("[uwsgi]\nworker-exec = echo late-vassal-output; exec sleep 600\n"), 0o644)
	waitFile(t, logfile, "late-vassal-output")
	if old, _ := os.ReadFile(rotated); strings.Contains(string(old), "late-vassal-output") {
		t.Errorf("a vassal spawned after the reopen wrote to the rotated file")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd); err != nil {
		t.Fatalf("the Emperor after SIGTERM: %v", err)
	}
	waitFile(t, logfile, "the Emperor is buried")
}

// TestDaemonizeDetachesAndKeepsItsGuarantees: daemonize returns at once
// with the Emperor detached (a new session it does not lead, stdin on
// /dev/null), its log in the file, every pidfile holding the daemon's
// pid; the vassals still die when the daemon is killed; a clean exit
// removes the pidfiles vacuum names and the emperor-pidfile.
func TestDaemonizeDetachesAndKeepsItsGuarantees(t *testing.T) {
	bin := buildBinaries(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sleepy.ini"), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	run := t.TempDir()
	logfile := filepath.Join(run, "daemon.log")
	files := map[string]string{}
	var args []string
	for _, o := range []string{"pidfile", "pidfile2", "safe-pidfile", "safe-pidfile2", "emperor-pidfile"} {
		files[o] = filepath.Join(run, o)
		args = append(args, "--"+o, files[o])
	}
	start := func(t *testing.T, extra ...string) (daemon, vassal, worker int) {
		t.Helper()
		for _, f := range files {
			os.Remove(f)
		}
		cmd := exec.Command(filepath.Join(bin, "emperor"), append(append([]string{"--dir", dir, "--daemonize", logfile}, args...), extra...)...)
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=") // as a shell starts it
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Fatalf("emperor --daemonize: %v, printed %q (want exit 0, nothing)", err, out)
		}
		text := waitFile(t, logfile, `msg="vassal running"`, "writing pidfile")
		daemon = readPid(t, files["emperor-pidfile"])
		killAtEnd(t, daemon)
		if daemon == cmd.Process.Pid {
			t.Fatalf("the daemon is the process started")
		}
		for o, f := range files {
			if p := readPid(t, f); p != daemon {
				t.Errorf("%s holds %d, want the daemon's pid %d", o, p, daemon)
			}
		}
		sid, _ := unix.Getsid(daemon)
		if mine, _ := unix.Getsid(0); sid == daemon || sid == mine {
			t.Errorf("daemon %d in session %d: want a new session it does not lead", daemon, sid)
		}
		if l, _ := os.Readlink("/proc/" + strconv.Itoa(daemon) + "/fd/0"); l != os.DevNull {
			t.Errorf("the daemon's stdin is %q, want /dev/null", l)
		}
		vassal, _ = strconv.Atoi(fieldValue(lineWith(text, `msg="vassal running"`), "pid"))
		worker, _ = strconv.Atoi(fieldValue(lineWith(text, `msg="worker started"`), "pid"))
		if worker > 0 {
			killAtEnd(t, worker)
		}
		return daemon, vassal, worker
	}

	// Killed, the daemon takes its vassals with it, and its guardian (with
	// cgroups) their workers.
	daemon, vassal, worker := start(t)
	pids := []int{daemon, vassal}
	if _, err := cgroup.Open(); err == nil && os.Getuid() == 0 {
		pids = append(pids, worker)
	}
	if err := syscall.Kill(daemon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if left := testkit.WaitGone(pids); len(left) > 0 {
		t.Fatalf("processes %v outlived the killed daemon (daemon, vassal, worker: %v)", left, pids)
	}

	os.Remove(logfile)
	daemon, vassal, _ = start(t, "--vacuum")
	syscall.Kill(daemon, syscall.SIGTERM)
	if left := testkit.WaitGone([]int{daemon, vassal}); len(left) > 0 {
		t.Fatalf("processes %v outlived Ragnarok", left)
	}
	waitFile(t, logfile, "pidfile removed")
	for o, f := range files {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left behind at a clean exit with vacuum", o)
		}
	}
}

// TestDaemonize2WaitsForTheStart: with daemonize2 the command returns once
// the daemon ran its start hooks and wrote its pidfiles, with exit 0; when
// a start hook fails, it exits 1 and the failure is on the terminal.
func TestDaemonize2WaitsForTheStart(t *testing.T) {
	bin := buildBinaries(t)
	dir := t.TempDir()
	run := t.TempDir()
	logfile, pidfile, marker := filepath.Join(run, "d2.log"), filepath.Join(run, "pid"), filepath.Join(run, "hooked")
	cmd := exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--daemonize2", logfile, "--pidfile2", pidfile,
		"--exec-as-user", "touch "+marker)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("emperor --daemonize2: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `msg="running command"`) {
		t.Errorf("the start hooks' lines are not on the terminal: %q", out)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the command returned before the start hook ran: %v", err)
	}
	daemon := readPid(t, pidfile)
	killAtEnd(t, daemon)
	waitFile(t, logfile, `msg="the Emperor is ruling"`)
	syscall.Kill(daemon, syscall.SIGTERM)
	if left := testkit.WaitGone([]int{daemon}); len(left) > 0 {
		t.Fatalf("daemon %d did not exit", daemon)
	}

	cmd = exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--daemonize2", logfile, "--exec-as-user", "exit 3")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `command \"exit 3\" (as user)`) {
		t.Errorf("a failed start hook under daemonize2: %v, printed\n%s", err, out)
	}
}

// TestTouchReloadRestartsTheEmperor: touching a touch-reload file ends
// every vassal and re-executes the Emperor in place: the same pid, new
// vassals.
func TestTouchReloadRestartsTheEmperor(t *testing.T) {
	bin := buildBinaries(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sleepy.ini"), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	touch := filepath.Join(t.TempDir(), "reload.me")
	os.WriteFile(touch, nil, 0o644)
	cmd := exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--touch-reload", touch)
	log := pipeLines(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd.Process.Pid)
	first, _ := strconv.Atoi(fieldValue(log.WaitFor(t, `msg="vassal running"`), "pid"))
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(touch, later, later); err != nil {
		t.Fatal(err)
	}
	log.WaitFor(t, "touch-reload: re-executing the Emperor")
	var second int
	log.Await(testkit.Deadline, func() bool {
		lines := log.Lines(`msg="vassal running"`)
		second, _ = strconv.Atoi(fieldValue(lines[len(lines)-1], "pid"))
		return second != first
	})
	if second == first {
		t.Fatalf("no new vassal after the restart; log:\n%s", log)
	}
	if testkit.Running(first) {
		t.Errorf("vassal %d of the first Emperor survived the restart", first)
	}
	if l := log.Find(`msg="the Emperor is ruling"`, "pid="+strconv.Itoa(cmd.Process.Pid)); l == "" || log.Count(`msg="the Emperor is ruling"`) != 2 {
		t.Errorf("want the Emperor ruling twice as pid %d; log:\n%s", cmd.Process.Pid, log)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd); err != nil {
		t.Fatalf("the restarted Emperor after SIGTERM: %v", err)
	}
	if testkit.Running(second) {
		t.Errorf("vassal %d survived Ragnarok", second)
	}
}

// TestStartHooksRunInUWSGIsOrder: the hook and exec options run at their
// phases in uWSGI's order; post-jail ones never run; as-root ones only as
// root; atexit ones at exit.
func TestStartHooksRunInUWSGIsOrder(t *testing.T) {
	bin := buildBinaries(t)
	out := filepath.Join(t.TempDir(), "order")
	ini := filepath.Join(t.TempDir(), "emperor.ini")
	os.WriteFile(ini, []byte(`[uwsgi]
emperor = `+t.TempDir()+`
hook-as-user-atexit = appendn:`+out+` hook-atexit
exec-as-user-atexit = echo exec-atexit >> `+out+`
exec-as-user = echo exec-as-user >> `+out+`
hook-as-user = appendn:`+out+` hook-as-user
exec-as-root = echo exec-as-root >> `+out+`
hook-as-root = appendn:`+out+` hook-as-root
hook-post-jail = appendn:`+out+` hook-post-jail
exec-in-jail = echo exec-in-jail >> `+out+`
hook-in-jail = appendn:`+out+` hook-in-jail
exec-pre-jail = echo exec-pre-jail >> `+out+`
hook-pre-jail = appendn:`+out+` hook-pre-jail
hook-pre-jail = putenv:HOOKED=yes
exec-pre-jail = test "$HOOKED" = yes && echo putenv-seen >> `+out+`
`), 0o644)
	cmd := exec.Command(filepath.Join(bin, "emperor"), "--ini", ini)
	log := pipeLines(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd.Process.Pid)
	log.WaitFor(t, `msg="the Emperor is ruling"`)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd); err != nil {
		t.Fatalf("exit: %v\n%s", err, log)
	}
	want := []string{"hook-pre-jail", "exec-pre-jail", "putenv-seen", "hook-in-jail", "exec-in-jail"}
	if os.Getuid() == 0 {
		want = append(want, "hook-as-root", "exec-as-root")
	}
	want = append(want, "hook-as-user", "exec-as-user", "hook-atexit", "exec-atexit")
	b, _ := os.ReadFile(out)
	if got := strings.Fields(string(b)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hooks ran as\n%q\nwant\n%q", got, want)
	}
}

// TestFailingStartHookStopsTheStart: a failing hook stops the Emperor's
// start with a line naming it, as uWSGI exits; an unsupported action is
// refused with the option's file and line.
func TestFailingStartHookStopsTheStart(t *testing.T) {
	bin := buildBinaries(t)
	cmd := exec.Command(filepath.Join(bin, "emperor"), "--dir", t.TempDir(), "--hook-in-jail", "mkdir:"+filepath.Join(t.TempDir(), "no", "such"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `hook \"mkdir:`) || !strings.Contains(string(out), "in-jail") {
		t.Errorf("a failed hook: %v\n%s", err, out)
	}
	ini := filepath.Join(t.TempDir(), "emperor.ini")
	os.WriteFile(ini, []byte("[uwsgi]\nemperor = /tmp\nhook-as-root = mount:proc none /proc\n"), 0o644)
	_, err = parseSettings([]string{"--ini", ini})
	if err == nil || !strings.Contains(err.Error(), ini+":3") || !strings.Contains(err.Error(), `"mount" is not supported`) {
		t.Errorf("an unsupported hook action: %v", err)
	}
	_, err = parseSettings([]string{"--hook-as-user", "no colon"})
	if err == nil || !strings.Contains(err.Error(), "ACTION:ARGS") {
		t.Errorf("a hook without an action: %v", err)
	}
}

func TestStrftime(t *testing.T) {
	at := time.Date(2026, 3, 7, 14, 5, 9, 0, time.UTC)
	for format, want := range map[string]string{
		"%Y-%m-%d %H:%M:%S": "2026-03-07 14:05:09",
		"%a %b %e %T %y":    "Sat Mar  7 14:05:09 26",
		"[%j] %s %%":        "[066] " + strconv.FormatInt(at.Unix(), 10) + " %",
		"%I%p %Q":           "02PM %Q",
		"%":                 "%",
	} {
		if got := strftime(format, at); got != want {
			t.Errorf("strftime(%q) = %q, want %q", format, got, want)
		}
	}
}

func TestFlagsReadAsUWSGI(t *testing.T) {
	// Flags take a value only after "=" on the command line (uWSGI's getopt
	// refuses even that; a config file's "logfile-chown = cheshire" is the
	// common case).
	s, err := parseSettings([]string{"--logfile-chown=cheshire", "--log-reopen", "--vacuum=off", "--disable-logging=1"})
	if err != nil || !s.life.logfileChown || !s.life.logReopen || s.life.vacuum || !s.life.disableLogging {
		t.Errorf("flags: %v, %+v", err, &s.life)
	}
}

func TestLogDateReadsAsUWSGI(t *testing.T) {
	for value, want := range map[string]string{"": "true", "true": "true", "1": "true", "%Y": "%Y", "false": "", "Off": ""} {
		s, err := parseSettings([]string{"--log-date=" + value}) // an optional value: only after "="
		if value == "" {
			s, err = parseSettings([]string{"--log-date"})
		}
		if err != nil {
			t.Errorf("log-date %q: %v", value, err)
			continue
		}
		if s.life.logDate != want {
			t.Errorf("log-date %q: %q; want %q", value, s.life.logDate, want)
		}
	}
}

// TestLogto2OpensAfterTheStartHooks: the start hooks log where the Emperor
// started; logto2 takes over after them. logto also sends to udp.
func TestLogto2OpensAfterTheStartHooks(t *testing.T) {
	bin := buildBinaries(t)
	logfile := filepath.Join(t.TempDir(), "late.log")
	cmd := exec.Command(filepath.Join(bin, "emperor"), "--dir", t.TempDir(), "--logto2", logfile, "--exec-as-user", "true")
	early := pipeLines(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd.Process.Pid)
	early.WaitFor(t, `msg="running command"`)
	text := waitFile(t, logfile, `msg="the Emperor is ruling"`)
	if strings.Contains(text, "running command") || early.Find("the Emperor is ruling") != "" {
		t.Errorf("lines on the wrong side of logto2:\nbefore:\n%s\nlogto2:\n%s", early, text)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd); err != nil {
		t.Fatal(err)
	}

	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cmd = exec.Command(filepath.Join(bin, "emperor"), "--dir", t.TempDir(), "--logto", conn.LocalAddr().String())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd.Process.Pid)
	conn.SetReadDeadline(time.Now().Add(testkit.Deadline))
	buf := make([]byte, 65536)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no udp log line: %v", err)
		}
		if strings.Contains(string(buf[:n]), "the Emperor is ruling") {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, cmd); err != nil {
		t.Fatal(err)
	}
}

// TestUnderSystemdDaemonizeStaysAndRestartReloads: with NOTIFY_SOCKET set,
// daemonize does not detach (systemd tracks the process it started) and
// only sends the log to its file; a touch-reload restart tells systemd
// RELOADING=1 then READY=1 again, never STOPPING=1, which would make
// systemd stop the unit.
func TestUnderSystemdDaemonizeStaysAndRestartReloads(t *testing.T) {
	bin := buildBinaries(t)
	run := t.TempDir()
	sock := filepath.Join(run, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	messages := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(messages)
				return
			}
			messages <- string(buf[:n])
		}
	}()
	next := func(want string) {
		t.Helper()
		deadline := time.After(testkit.Deadline)
		for {
			select {
			case m, ok := <-messages:
				if !ok {
					t.Fatalf("notify socket closed before %q", want)
				}
				if strings.Contains(m, "STOPPING=1") && want != "STOPPING=1" {
					t.Fatalf("systemd was told %q while waiting for %q", m, want)
				}
				if strings.Contains(m, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q on the notify socket", want)
			}
		}
	}
	logfile, touch := filepath.Join(run, "emperor.log"), filepath.Join(run, "touch")
	os.WriteFile(touch, nil, 0o644)
	cmd := exec.Command(filepath.Join(bin, "emperor"), "--dir", t.TempDir(), "--daemonize", logfile, "--touch-reload", touch)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, cmd.Process.Pid)
	next("READY=1")
	waitFile(t, logfile, "daemonize: staying in the foreground", "NOTIFY_SOCKET")
	later := time.Now().Add(time.Hour)
	os.Chtimes(touch, later, later)
	next("RELOADING=1")
	next("READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1")
	if err := waitExit(t, cmd); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
