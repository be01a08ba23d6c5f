package files_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
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

// realDir is a fresh temporary directory, symlinks resolved.
func realDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// stamp is a fixed second; tests add nanoseconds to it.
var stamp = time.Unix(1_700_000_000, 0)

// wantVersion is the Version a stat (or lstat) of path gives.
func wantVersion(t *testing.T, path string, follow bool) (monitor.Version, monitor.Owner) {
	t.Helper()
	var fi os.FileInfo
	var err error
	if follow {
		fi, err = os.Stat(path)
	} else {
		fi, err = os.Lstat(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return monitor.Version{ModTime: fi.ModTime().UnixNano(), Size: fi.Size(), Inode: st.Ino},
		monitor.Owner{UID: st.Uid, GID: st.Gid}
}

func TestDir_InitialScan(t *testing.T) {
	dir := realDir(t)
	for _, n := range []string{"a.ini", "b.yml", "c.json", "d.xml", "e.yaml", "f.js", ".hidden.ini",
		"foo.skel", "foo.txt", "ini", "a.ini~", "A.INI"} {
		writeFile(t, filepath.Join(dir, n), "[uwsgi]\n")
	}
	mkdir(t, filepath.Join(dir, "sub.ini"))
	mkdir(t, filepath.Join(dir, "subdir"))
	writeFile(t, filepath.Join(dir, "subdir", "x.ini"), "[uwsgi]\n")
	cwd, _ := os.Getwd()

	h := newDir(t, dir, monitor.Options{})
	if got, want := h.M.ID(), "dir://"+dir; got != want {
		t.Errorf("ID() = %q, want %q", got, want)
	}
	if h.M.String() != h.M.ID() {
		t.Errorf("String() = %q, want ID %q", h.M.String(), h.M.ID())
	}
	evs := h.Drain()
	got := names(evs, monitor.Touch)
	want := []string{"a.ini", "b.yml", "c.json", "d.xml", "e.yaml", "f.js", ".hidden.ini"}
	if len(got) != len(want) || len(evs) != len(want) {
		t.Fatalf("initial events %s, want one Touch for each of %v", monitortest.Describe(evs), want)
	}
	for _, n := range want {
		ev, ok := got[n]
		if !ok {
			t.Errorf("no Touch for %s", n)
			continue
		}
		path := filepath.Join(dir, n)
		ver, owner := wantVersion(t, path, true)
		if ev.Key != (monitor.Key{Monitor: h.M.ID(), Name: n}) {
			t.Errorf("%s: key %+v", n, ev.Key)
		}
		if ev.Path != path {
			t.Errorf("%s: Path %q, want %q", n, ev.Path, path)
		}
		if ev.Version != ver {
			t.Errorf("%s: Version %+v, want %+v", n, ev.Version, ver)
		}
		if ev.Owner == nil || *ev.Owner != owner {
			t.Errorf("%s: Owner %v, want %+v", n, ev.Owner, owner)
		}
		if ev.Reason != "rescan" {
			t.Errorf("%s: Reason %q, want rescan", n, ev.Reason)
		}
		if ev.Config != nil {
			t.Errorf("%s: Config should be nil for files", n)
		}
	}
	if now, _ := os.Getwd(); now != cwd {
		t.Errorf("working directory changed from %s to %s", cwd, now)
	}
}

func TestDir_Create(t *testing.T) {
	dir := realDir(t)
	h := newDir(t, dir, monitor.Options{})
	h.ExpectNone(h.Drain(), "empty directory")

	start := time.Now()
	writeFile(t, filepath.Join(dir, "new.ini"), "[uwsgi]\n")
	ev := h.WaitEvent(monitor.Touch, "new.ini")
	t.Logf("create to Touch: %v", time.Since(start))
	if ev.Reason != "created" {
		t.Errorf("Reason %q, want created", ev.Reason)
	}
	if ev.Path != filepath.Join(dir, "new.ini") {
		t.Errorf("Path %q", ev.Path)
	}
	if ev.Version.Size == 0 {
		// Seen between the create and the write: the write is a change.
		if ev := h.WaitEvent(monitor.Touch, "new.ini"); ev.Version.Size != int64(len("[uwsgi]\n")) {
			t.Errorf("after the write: size %d", ev.Version.Size)
		}
	}

	writeFile(t, filepath.Join(dir, "new.txt"), "x")
	writeFile(t, filepath.Join(dir, "new.skel"), "x")
	mkdir(t, filepath.Join(dir, "newdir.ini"))
	writeFile(t, filepath.Join(dir, "newdir.ini", "inner.ini"), "x")
	h.ExpectNone(dirSync(h, dir), "non-vassals created")
}

// Two edits within one second, and an mtime going backwards, are all seen
// (uWSGI compares whole seconds, bug B5).
func TestDir_WriteTwiceWithinOneSecond(t *testing.T) {
	dir := realDir(t)
	path := filepath.Join(dir, "a.ini")
	writeFile(t, path, "one")
	setMtime(t, path, stamp.Add(100))
	h := newDir(t, dir, monitor.Options{})
	h.WaitEvent(monitor.Touch, "a.ini")

	for i, step := range []struct {
		text string
		mt   time.Time
	}{
		{"two", stamp.Add(200)}, // same size, same second
		{"six", stamp.Add(300)},
		{"six", stamp.Add(-time.Hour)}, // backwards
	} {
		writeFile(t, path, step.text)
		setMtime(t, path, step.mt)
		ev := h.WaitFor("Touch a.ini at "+step.mt.String(), func(ev monitor.Event) bool {
			return ev.Op == monitor.Touch && ev.Key.Name == "a.ini" && ev.Version.ModTime == step.mt.UnixNano()
		})
		if ev.Reason != "modified" {
			t.Errorf("step %d: Reason %q, want modified", i, ev.Reason)
		}
	}
	// A change of mtime alone, no write.
	setMtime(t, path, stamp.Add(400))
	h.WaitFor("Touch a.ini after chtimes", func(ev monitor.Event) bool {
		return ev.Op == monitor.Touch && ev.Version.ModTime == stamp.Add(400).UnixNano()
	})
	// Nothing changed: nothing emitted.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	h.ExpectNone(dirSync(h, dir), "chmod changes no version")
}

func TestDir_Delete(t *testing.T) {
	dir := realDir(t)
	writeFile(t, filepath.Join(dir, "a.ini"), "x")
	writeFile(t, filepath.Join(dir, "b.ini"), "x")
	h := newDir(t, dir, monitor.Options{})
	if err := os.Remove(filepath.Join(dir, "a.ini")); err != nil {
		t.Fatal(err)
	}
	ev := h.WaitEvent(monitor.Destroy, "a.ini")
	if ev.Reason != "removed" || ev.Path != filepath.Join(dir, "a.ini") {
		t.Errorf("Destroy: %+v", ev)
	}
	rest := dirSync(h, dir)
	h.ExpectNone(rest, "after one removal")
}

func TestDir_Rename(t *testing.T) {
	dir := realDir(t)
	writeFile(t, filepath.Join(dir, "a.ini"), "x")
	h := newDir(t, dir, monitor.Options{})
	h.Drain()
	mark := h.Mark()
	if err := os.Rename(filepath.Join(dir, "a.ini"), filepath.Join(dir, "b.ini")); err != nil {
		t.Fatal(err)
	}
	h.WaitSet(mark, monitortest.Destroy("a.ini"), monitortest.Touch("b.ini"))

	// Renamed to a non-vassal name and back.
	mark = h.Mark()
	if err := os.Rename(filepath.Join(dir, "b.ini"), filepath.Join(dir, "b.ini.bak")); err != nil {
		t.Fatal(err)
	}
	h.WaitSet(mark, monitortest.Destroy("b.ini"))
	if err := os.Rename(filepath.Join(dir, "b.ini.bak"), filepath.Join(dir, "b.ini")); err != nil {
		t.Fatal(err)
	}
	h.WaitSet(mark, monitortest.Touch("b.ini"))
}

// Replacing a config by renaming a new file over it changes its inode,
// which is a change even if size and mtime are equal.
func TestDir_AtomicReplace(t *testing.T) {
	dir := realDir(t)
	path := filepath.Join(dir, "a.ini")
	writeFile(t, path, "aaaa")
	setMtime(t, path, stamp)
	h := newDir(t, dir, monitor.Options{})
	first := h.WaitEvent(monitor.Touch, "a.ini")

	tmp := filepath.Join(dir, "a.ini.tmp")
	writeFile(t, tmp, "bbbb")
	setMtime(t, tmp, stamp)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	ev := h.WaitEvent(monitor.Touch, "a.ini")
	if ev.Reason != "modified" {
		t.Errorf("Reason %q, want modified", ev.Reason)
	}
	if ev.Version.Inode == first.Version.Inode || ev.Version.ModTime != first.Version.ModTime || ev.Version.Size != first.Version.Size {
		t.Errorf("Version %+v after %+v: want only the inode to differ", ev.Version, first.Version)
	}
	h.ExpectNone(dirSync(h, dir), "after replace")
}

func TestDir_SymlinkFollowed(t *testing.T) {
	dir, elsewhere := realDir(t), realDir(t)
	target := filepath.Join(elsewhere, "target.conf")
	writeFile(t, target, "one")
	link := filepath.Join(dir, "app.ini")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// The target changes without any event in dir: the periodic rescan
	// stats symlinks.
	h := newDir(t, dir, monitor.Options{Freq: 20 * time.Millisecond})
	ev := h.WaitEvent(monitor.Touch, "app.ini")
	ver, _ := wantVersion(t, target, true)
	if ev.Version != ver || ev.Path != link {
		t.Errorf("Touch %+v at %s, want the target's %+v at %s", ev.Version, ev.Path, ver, link)
	}

	writeFile(t, target, "two")
	setMtime(t, target, stamp.Add(1))
	h.WaitFor("Touch after the target changed", func(ev monitor.Event) bool {
		return ev.Op == monitor.Touch && ev.Key.Name == "app.ini" && ev.Version.ModTime == stamp.Add(1).UnixNano()
	})

	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(monitor.Destroy, "app.ini")
	writeFile(t, target, "three")
	h.WaitEvent(monitor.Touch, "app.ini")

	// Pointing the link elsewhere (ln -sf: a new link renamed over it).
	other := filepath.Join(elsewhere, "other.conf")
	writeFile(t, other, "other")
	tmp := filepath.Join(dir, "app.ini.new")
	if err := os.Symlink(other, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	oVer, _ := wantVersion(t, other, true)
	h.WaitFor("Touch for the new target", func(ev monitor.Event) bool {
		return ev.Op == monitor.Touch && ev.Key.Name == "app.ini" && ev.Version == oVer
	})
}

// touchLink sets a symlink's own mtime, like touch --no-dereference.
func touchLink(t *testing.T, link string, mt time.Time) {
	t.Helper()
	ts := unix.NsecToTimespec(mt.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, link, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

func TestDir_NoFollowLinkTouch(t *testing.T) {
	dir, elsewhere := realDir(t), realDir(t)
	target := filepath.Join(elsewhere, "target.conf")
	writeFile(t, target, "one")
	link := filepath.Join(dir, "app.ini")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	h := newDir(t, dir, monitor.Options{NoFollow: true})
	ev := h.WaitEvent(monitor.Touch, "app.ini")
	ver, owner := wantVersion(t, link, false)
	if ev.Version != ver || *ev.Owner != owner {
		t.Errorf("Touch %+v %+v, want the link's own %+v %+v", ev.Version, *ev.Owner, ver, owner)
	}

	touchLink(t, link, stamp.Add(7))
	ev = h.WaitEvent(monitor.Touch, "app.ini")
	if ev.Version.ModTime != stamp.Add(7).UnixNano() || ev.Reason != "modified" {
		t.Errorf("after touch -h: %+v (%s), want mtime %d, modified", ev.Version, ev.Reason, stamp.Add(7).UnixNano())
	}

	// The target is not looked at.
	writeFile(t, target, "changed")
	setMtime(t, target, stamp.Add(8))
	h.ExpectNone(dirSync(h, dir), "target edited with NoFollow")
}

func TestDir_FollowLinkTouchNoChange(t *testing.T) {
	dir, elsewhere := realDir(t), realDir(t)
	target := filepath.Join(elsewhere, "target.conf")
	writeFile(t, target, "one")
	link := filepath.Join(dir, "app.ini")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	h := newDir(t, dir, monitor.Options{})
	h.WaitEvent(monitor.Touch, "app.ini")
	touchLink(t, link, stamp.Add(7))
	h.ExpectNone(dirSync(h, dir), "touch -h of a followed link")
}

func TestDir_DanglingSymlink(t *testing.T) {
	for _, noFollow := range []bool{false, true} {
		t.Run(map[bool]string{false: "follow", true: "nofollow"}[noFollow], func(t *testing.T) {
			dir := realDir(t)
			if err := os.Symlink(filepath.Join(dir, "missing.conf"), filepath.Join(dir, "old.ini")); err != nil {
				t.Fatal(err)
			}
			h := newDir(t, dir, monitor.Options{NoFollow: noFollow})
			evs := h.Drain()
			if err := os.Symlink(filepath.Join(dir, "missing.conf"), filepath.Join(dir, "new.ini")); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, dirSync(h, dir)...)
			got := names(evs, monitor.Touch)
			if noFollow {
				if len(got) != 2 || len(evs) != 2 {
					t.Fatalf("NoFollow: events %s, want Touch old.ini and new.ini", monitortest.Describe(evs))
				}
				return
			}
			h.ExpectNone(evs, "dangling symlinks when following")
			// The target appears: both links become vassals.
			writeFile(t, filepath.Join(dir, "missing.conf"), "x")
			mark := h.Mark()
			h.M.Rescan()
			h.WaitSet(mark, monitortest.Touch("old.ini"), monitortest.Touch("new.ini"))
		})
	}
}

func TestDir_ExtraExtension(t *testing.T) {
	dir := realDir(t)
	for _, n := range []string{"a.ini", "b.conf", "c.cfg", "d.txt"} {
		writeFile(t, filepath.Join(dir, n), "x")
	}
	h := newDir(t, dir, monitor.Options{Extensions: []string{"conf", ".cfg"}})
	got := names(h.Drain(), monitor.Touch)
	if len(got) != 3 || got["a.ini"].Op == 0 || got["b.conf"].Op == 0 || got["c.cfg"].Op == 0 {
		t.Errorf("got %v, want a.ini b.conf c.cfg", got)
	}
	writeFile(t, filepath.Join(dir, "e.conf"), "x")
	h.WaitEvent(monitor.Touch, "e.conf")

	plain := newDir(t, dir, monitor.Options{})
	got = names(plain.Drain(), monitor.Touch)
	if len(got) != 1 || got["a.ini"].Op == 0 {
		t.Errorf("without extra extensions got %v, want a.ini", got)
	}
}

// hardLinked returns a config in dir that is a hard link to a file in
// another directory: writes through that other name raise no inotify
// event in dir and leave the directory entry unchanged.
func hardLinked(t *testing.T, dir string) (other string) {
	t.Helper()
	other = filepath.Join(realDir(t), "x.txt")
	writeFile(t, other, "one")
	if err := os.Link(other, filepath.Join(dir, "app.ini")); err != nil {
		t.Fatal(err)
	}
	return other
}

func TestDir_Rescan(t *testing.T) {
	dir := realDir(t)
	other := hardLinked(t, dir)
	h := newDir(t, dir, monitor.Options{Freq: time.Hour})
	h.WaitEvent(monitor.Touch, "app.ini")

	writeFile(t, other, "two")
	setMtime(t, other, stamp.Add(5))
	h.M.Rescan()
	h.M.Rescan() // never blocks
	ev := h.WaitFor("Touch after Rescan", func(ev monitor.Event) bool {
		return ev.Op == monitor.Touch && ev.Key.Name == "app.ini" && ev.Version.ModTime == stamp.Add(5).UnixNano()
	})
	if ev.Reason != "modified" {
		t.Errorf("Reason %q", ev.Reason)
	}
}

// The deep scan, every 100 periods, stats everything even without Rescan.
func TestDir_DeepScan(t *testing.T) {
	dir := realDir(t)
	other := hardLinked(t, dir)
	h := newDir(t, dir, monitor.Options{Freq: 10 * time.Millisecond})
	h.WaitEvent(monitor.Touch, "app.ini")
	writeFile(t, other, "two")
	setMtime(t, other, stamp.Add(5))
	h.WaitFor("Touch after a deep scan", func(ev monitor.Event) bool {
		return ev.Op == monitor.Touch && ev.Key.Name == "app.ini" && ev.Version.ModTime == stamp.Add(5).UnixNano()
	})
}

// A directory that vanishes (moved away, then deleted) is an outage, not
// the removal of its vassals.
func TestDir_Outage(t *testing.T) {
	parent := realDir(t)
	dir := filepath.Join(parent, "vassals")
	mkdir(t, dir)
	writeFile(t, filepath.Join(dir, "a.ini"), "a")
	writeFile(t, filepath.Join(dir, "b.ini"), "b")
	h := newDir(t, dir, monitor.Options{Freq: 20 * time.Millisecond})
	h.Drain()

	moved := filepath.Join(parent, "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(moved); err != nil {
		t.Fatal(err)
	}
	h.WaitLogs(1, "cannot read directory")
	h.WaitLogs(2, "directory still unreadable") // retried every period, logged once
	if n := h.Log.Count("cannot read directory"); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
	if n := h.Log.Count("monitor=dir://" + dir); n == 0 {
		t.Errorf("log lines lack the monitor attribute")
	}
	h.ExpectNone(h.Drain(), "directory gone")

	// It comes back with other contents: now the differences are real.
	mkdir(t, dir)
	writeFile(t, filepath.Join(dir, "a.ini"), "a2")
	mark := h.Mark()
	h.WaitSet(mark, monitortest.Touch("a.ini"), monitortest.Destroy("b.ini"))
	h.WaitLogs(1, "directory readable again")
	// And it is watched again.
	writeFile(t, filepath.Join(dir, "c.ini"), "c")
	h.WaitEvent(monitor.Touch, "c.ini")
}

func TestDir_Unreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any directory")
	}
	dir := realDir(t)
	writeFile(t, filepath.Join(dir, "a.ini"), "a")
	h := newDir(t, dir, monitor.Options{Freq: 20 * time.Millisecond})
	h.WaitEvent(monitor.Touch, "a.ini")
	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	h.WaitLogs(1, "cannot read directory")
	h.WaitLogs(1, "directory still unreadable")
	h.ExpectNone(h.Drain(), "unreadable directory")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.WaitLogs(1, "directory readable again")
	h.ExpectNone(dirSync(h, dir), "readable again, nothing changed")
}

func TestNewDir_Errors(t *testing.T) {
	dir := realDir(t)
	missing := filepath.Join(dir, "nope")
	_, err := files.NewDir(missing, monitor.Options{})
	if err == nil || err.Error() != "dir://"+missing+": no such directory" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: err = %v", err)
	}
	file := filepath.Join(dir, "f.ini")
	writeFile(t, file, "x")
	if _, err := files.NewDir(file, monitor.Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file: err = %v", err)
	}
	if _, err := files.NewDir("", monitor.Options{}); err == nil {
		t.Errorf("empty path accepted")
	}
}

// The path is made absolute and resolved once: symlinks to the directory
// and relative paths name the real directory.
func TestNewDir_ResolvesPath(t *testing.T) {
	parent := realDir(t)
	dir := filepath.Join(parent, "real")
	mkdir(t, dir)
	writeFile(t, filepath.Join(dir, "a.ini"), "x")
	if err := os.Symlink(dir, filepath.Join(parent, "link")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(parent)
	for _, arg := range []string{"link", "real", filepath.Join(parent, "link") + "/"} {
		m, err := files.NewDir(arg, monitor.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.ID() != "dir://"+dir {
			t.Errorf("NewDir(%q).ID() = %q, want dir://%s", arg, m.ID(), dir)
		}
	}
	h := monitortest.Build(t, files.NewDir, "link", monitor.Options{})
	t.Chdir(t.TempDir()) // Run does not depend on the working directory
	h.Start()
	h.WaitReady()
	ev := h.WaitEvent(monitor.Touch, "a.ini")
	if ev.Path != filepath.Join(dir, "a.ini") {
		t.Errorf("Path %q", ev.Path)
	}
}

// Two directories holding app.ini are two vassals (bug B15).
func TestDir_TwoMonitorsDistinctKeys(t *testing.T) {
	d1, d2 := realDir(t), realDir(t)
	writeFile(t, filepath.Join(d1, "app.ini"), "1")
	writeFile(t, filepath.Join(d2, "app.ini"), "2")
	h1 := newDir(t, d1, monitor.Options{})
	h2 := newDir(t, d2, monitor.Options{})
	e1 := h1.WaitEvent(monitor.Touch, "app.ini")
	e2 := h2.WaitEvent(monitor.Touch, "app.ini")
	if e1.Key == e2.Key {
		t.Errorf("both keys are %v", e1.Key)
	}
	if e1.Key.Monitor != "dir://"+d1 || e2.Key.Monitor != "dir://"+d2 {
		t.Errorf("keys %v and %v", e1.Key, e2.Key)
	}
}

// A burst of writes is coalesced, and the last version is always seen.
func TestDir_Burst(t *testing.T) {
	dir := realDir(t)
	path := filepath.Join(dir, "a.ini")
	h := newDir(t, dir, monitor.Options{})
	for i := range 200 {
		writeFile(t, path, strings.Repeat("x", i))
	}
	setMtime(t, path, stamp)
	final, _ := wantVersion(t, path, true)
	h.WaitFor("final version", func(ev monitor.Event) bool {
		return ev.Op == monitor.Touch && ev.Version == final
	})
	t.Logf("200 writes gave %d events", len(h.Seen))
}

// Run returns nil on cancellation even while blocked sending an event or
// the ready signal.
func TestRun_CancelWhileBlocked(t *testing.T) {
	for _, withFile := range []bool{true, false} {
		dir := realDir(t)
		if withFile {
			writeFile(t, filepath.Join(dir, "a.ini"), "x")
		}
		ready := make(chan string) // nobody reads either
		m, err := files.NewDir(dir, monitor.Options{Ready: ready})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, make(chan monitor.Event)) }()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(testkit.Deadline):
			t.Fatal("Run did not return")
		}
	}
}

// When the loop is stuck sending, inotify's queue can overflow; the full
// rescan that follows finds what the lost events said.
func TestDir_Overflow(t *testing.T) {
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &n); err == nil && n > 0 {
			limit = n
		}
	}
	if limit > 1<<18 {
		t.Skipf("max_queued_events %d is too large to overflow quickly", limit)
	}
	dir := realDir(t)
	writeFile(t, filepath.Join(dir, "keep.ini"), "k")
	writeFile(t, filepath.Join(dir, "gone.ini"), "g")
	h := monitortest.Build(t, files.NewDir, dir, monitor.Options{})
	h.Events = make(chan monitor.Event) // unbuffered: the loop blocks on sending
	h.Start()
	for range 2 {
		h.WaitFor("initial", func(monitor.Event) bool { return true })
	}
	h.WaitReady()
	// The loop sends this Touch and blocks until we read.
	writeFile(t, filepath.Join(dir, "block.ini"), "b")
	x, y := filepath.Join(dir, "x.txt"), filepath.Join(dir, "y.txt")
	writeFile(t, x, "")
	writeFile(t, y, "")
	for i := range 2 * limit {
		// Alternate so inotify cannot merge identical events.
		p := x
		if i%2 == 1 {
			p = y
		}
		setMtime(t, p, stamp.Add(time.Duration(i)))
	}
	writeFile(t, filepath.Join(dir, "late.ini"), "l")
	if err := os.Remove(filepath.Join(dir, "gone.ini")); err != nil {
		t.Fatal(err)
	}
	mark := h.Mark()
	h.WaitSet(mark, monitortest.Touch("block.ini"), monitortest.Touch("late.ini"), monitortest.Destroy("gone.ini"))
	t.Logf("overflow logged: %v", h.Log.Count("overflowed") > 0)
}

// The owner comes from the same stat as the version: the target's when
// following, the link's own with NoFollow. A change of owner is a Touch.
func TestDir_Owner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root")
	}
	dir, elsewhere := realDir(t), realDir(t)
	target := filepath.Join(elsewhere, "target.conf")
	writeFile(t, target, "x")
	link := filepath.Join(dir, "app.ini")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(target, 1001, 1002); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 2001, 2002); err != nil {
		t.Fatal(err)
	}
	follow := newDir(t, dir, monitor.Options{})
	noFollow := newDir(t, dir, monitor.Options{NoFollow: true})
	if ev := follow.WaitEvent(monitor.Touch, "app.ini"); *ev.Owner != (monitor.Owner{UID: 1001, GID: 1002}) {
		t.Errorf("following: owner %+v, want the target's", *ev.Owner)
	}
	if ev := noFollow.WaitEvent(monitor.Touch, "app.ini"); *ev.Owner != (monitor.Owner{UID: 2001, GID: 2002}) {
		t.Errorf("NoFollow: owner %+v, want the link's", *ev.Owner)
	}
	if err := os.Lchown(link, 3001, 3002); err != nil {
		t.Fatal(err)
	}
	ev := noFollow.WaitEvent(monitor.Touch, "app.ini")
	if *ev.Owner != (monitor.Owner{UID: 3001, GID: 3002}) || ev.Reason != "modified" {
		t.Errorf("after lchown: %+v %s", *ev.Owner, ev.Reason)
	}
}
