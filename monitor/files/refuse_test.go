package files_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/files"
	"github.com/emperor-dev/emperor/monitor/monitortest"
)

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// rescanned makes the monitor h scan its directory dir in full and waits
// until it has: a config edited through a hard link from elsewhere (see
// hardLinked) changes only for a full scan.
func rescanned(t *testing.T, h *monitortest.Harness, other string, round int) {
	t.Helper()
	writeFile(t, other, strings.Repeat("x", round+2))
	mt := stamp.Add(time.Duration(round + 1))
	setMtime(t, other, mt)
	h.M.Rescan()
	h.WaitFor("Touch of app.ini after a rescan", func(ev monitor.Event) bool {
		return ev.Op == monitor.Touch && ev.Key.Name == "app.ini" && ev.Version.ModTime == mt.UnixNano()
	})
}

// A name that exists but is no config is refused with one log line naming
// it and saying why, however often the monitor looks at it, and becomes a
// vassal once it is a regular file.
func TestDir_RefusalsSaidOnce(t *testing.T) {
	cases := []struct {
		name, why string
		make      func(t *testing.T, path string)
	}{
		{"fifo", "not a regular file (fifo)", mkfifo},
		{"directory", "not a regular file (directory)", mkdir},
		{"symlink loop", "symlink loop", func(t *testing.T, path string) { symlink(t, filepath.Base(path), path) }},
		{"dangling symlink", "dangling symlink", func(t *testing.T, path string) { symlink(t, "missing.conf", path) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := realDir(t)
			other := hardLinked(t, dir)
			before, after := filepath.Join(dir, "before.ini"), filepath.Join(dir, "after.ini")
			tc.make(t, before)
			h := newDir(t, dir, monitor.Options{})
			h.WaitLog("refusing config: "+tc.why, "path="+before)
			tc.make(t, after) // seen through inotify
			h.WaitLog("refusing config: "+tc.why, "path="+after)

			for round := range 3 {
				rescanned(t, h, other, round)
				for _, p := range []string{before, after} {
					// An attribute change is an inotify event for the name.
					ts := []unix.Timespec{unix.NsecToTimespec(int64(round)), unix.NsecToTimespec(int64(round))}
					if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
						t.Fatal(err)
					}
				}
				dirSync(h, dir)
			}
			for _, p := range []string{before, after} {
				if n := h.Log.Count("refusing config", "path="+p); n != 1 {
					t.Errorf("%s refused in %d log lines, want 1; log:\n%s", p, n, h.Log)
				}
			}
			for _, ev := range h.Seen {
				if ev.Key.Name == "before.ini" || ev.Key.Name == "after.ini" {
					t.Errorf("event for a refused name: %s", monitortest.Describe([]monitor.Event{ev}))
				}
			}

			// Made a regular file, it is a vassal, and refused no more.
			if err := os.Remove(before); err != nil {
				t.Fatal(err)
			}
			writeFile(t, before, "[uwsgi]\n")
			h.WaitEvent(monitor.Touch, "before.ini")
			rescanned(t, h, other, 3)
			if n := h.Log.Count("refusing config", "path="+before); n != 1 {
				t.Errorf("after becoming a file: %d refusals, want the first only", n)
			}
		})
	}
}

// A different refusal of the same name is said again.
func TestDir_RefusalChangeSaid(t *testing.T) {
	dir := realDir(t)
	path := filepath.Join(dir, "app.ini")
	mkfifo(t, path)
	h := newDir(t, dir, monitor.Options{})
	h.WaitLog("refusing config: not a regular file (fifo)", "path="+path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	mkdir(t, path)
	h.WaitLog("refusing config: not a regular file (directory)", "path="+path)
	dirSync(h, dir)
	if n := h.Log.Count("refusing config"); n != 2 {
		t.Errorf("%d refusals, want 2; log:\n%s", n, h.Log)
	}
}

// A hostile name cannot forge log lines or colours, in either log format.
func TestDir_HostileNameLogged(t *testing.T) {
	dir := realDir(t)
	base := "evil\n\x1b[31mred\xff.ini"
	mkfifo(t, filepath.Join(dir, base))
	jsonLog := &testkit.Log{}
	asJSON := func(arg string, opts monitor.Options) (monitor.Monitor, error) {
		opts.Logger = slog.New(slog.NewJSONHandler(jsonLog, nil))
		return files.NewDir(arg, opts)
	}
	text := newDir(t, dir, monitor.Options{})
	monitortest.Start(t, asJSON, dir, monitor.Options{})
	line := text.WaitLog("refusing config")
	if want := `evil\n\x1b[31mred\xff.ini`; !strings.Contains(line, want) {
		t.Errorf("text log line %q lacks the escaped name %s", line, want)
	}
	jsonLine := jsonLog.WaitFor(t, "refusing config")
	if want := `evil\n\u001b[31mred\ufffd.ini`; !strings.Contains(jsonLine, want) {
		t.Errorf("json log line %q lacks the escaped name %s", jsonLine, want)
	}
	for format, l := range map[string]*testkit.Log{"text": text.Log, "json": jsonLog} {
		s := l.String()
		if strings.Count(s, "\n") != len(l.Lines()) || len(l.Lines("refusing config")) != 1 || strings.ContainsRune(s, 0x1b) {
			t.Errorf("%s log forged by a file name:\n%q", format, s)
		}
	}
}

// envUnprivileged marks the copy of the test binary that
// TestDir_RefusesUnreadable runs without root's privileges.
const envUnprivileged = "EMPEROR_TEST_UNPRIVILEGED"

// A config the Emperor may not read is refused. Root reads anything, so as
// root the test runs itself again as uid and gid 65534.
func TestDir_RefusesUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		if os.Getenv(envUnprivileged) != "" {
			t.Fatal("still root after dropping privileges")
		}
		runUnprivileged(t)
		return
	}
	dir := realDir(t)
	path := filepath.Join(dir, "app.ini")
	writeFile(t, path, "[uwsgi]\n")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	h := newDir(t, dir, monitor.Options{})
	h.WaitLog("refusing config: permission denied", "path="+path)
	h.M.Rescan()
	dirSync(h, dir)
	if n := h.Log.Count("refusing config"); n != 1 {
		t.Errorf("%d refusals, want 1; log:\n%s", n, h.Log)
	}
	h.ExpectNone(h.Drain(), "unreadable config")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(monitor.Touch, "app.ini")
}

// runUnprivileged runs the calling test in a copy of the test binary as
// uid and gid 65534, and fails if it fails.
func runUnprivileged(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The build directory is root's alone: copy the binary where 65534
	// can run it, and let it make its temporary directories there.
	tmp, err := os.MkdirTemp("", "emperor-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(tmp); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by others, so uid 65534 cannot reach a copy of the test binary", d)
		}
	}
	bin := filepath.Join(tmp, "files.test")
	copyFile(t, self, bin)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envUnprivileged+"=1", "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("as uid 65534, the test did not pass:\n%s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
