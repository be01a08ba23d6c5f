package files

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/emperor-dev/emperor/monitor"
)

func TestParsePattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, cwd, baseAbs, baseName string
		comps                           []string
	}{
		{"/opt/apps/app*/app*.*", "", "/opt/apps", "/opt/apps", []string{"app*", "app*.*"}},
		{"/etc/app.ini", "", "/etc", "/etc", []string{"app.ini"}},
		{"/*.ini", "", "/", "/", []string{"*.ini"}},
		{"*.ini", "/w", "/w", "", []string{"*.ini"}},
		{"./conf//*.ini", "/w", "/w/conf", "conf", []string{"*.ini"}},
		{"../v/*/x.ini", "/w/d", "/w/v", "../v", []string{"*", "x.ini"}},
		{"a/b\\*c/*.ini", "/w", "/w/a", "a", []string{"b\\*c", "*.ini"}},
	} {
		l, err := parsePattern(tc.pattern, tc.cwd)
		if err != nil {
			t.Errorf("%q: %v", tc.pattern, err)
			continue
		}
		if l.baseAbs != tc.baseAbs || l.baseName != tc.baseName || fmt.Sprint(l.comps) != fmt.Sprint(tc.comps) {
			t.Errorf("%q: got %q %q %q, want %q %q %q", tc.pattern, l.baseAbs, l.baseName, l.comps, tc.baseAbs, tc.baseName, tc.comps)
		}
	}
}

func TestLayoutMatch(t *testing.T) {
	l := layout{comps: []string{"app*", "*.ini", ".*"}}
	for _, tc := range []struct {
		level int
		name  string
		want  bool
	}{
		{0, "app1", true}, {0, "xapp", false}, {1, "a.ini", true}, {1, ".a.ini", false},
		{2, ".a.ini", true}, {2, "a.ini", false},
	} {
		if got := l.match(tc.level, tc.name); got != tc.want {
			t.Errorf("match(%d, %q) = %v", tc.level, tc.name, got)
		}
	}
	dir := layout{}
	if !dir.match(0, ".hidden.ini") {
		t.Errorf("dir:// skips dot files; uWSGI does not")
	}
}

func TestJoin(t *testing.T) {
	for _, tc := range [][3]string{{"", "a", "a"}, {"/", "a", "/a"}, {"/x", "a", "/x/a"}, {"../v", "a", "../v/a"}} {
		if got := join(tc[0], tc[1]); got != tc[2] {
			t.Errorf("join(%q, %q) = %q", tc[0], tc[1], got)
		}
	}
}

// newTestState builds the run state of a dir monitor on dir, watched, with
// its first (full) scan done. The watcher's events are never read here.
func newTestState(tb testing.TB, dir string, opts monitor.Options) *runState {
	tb.Helper()
	mi, err := NewDir(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	s := newRunState(mi.(*fileMonitor))
	w, err := fsnotify.NewWatcher()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close() })
	s.w = w
	s.watchBase()
	if !s.scan(true) {
		tb.Fatal("first scan failed")
	}
	s.out = s.out[:0]
	return s
}

func writeN(tb testing.TB, dir string, n int) {
	tb.Helper()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("vassal-%04d.ini", i)), []byte("[uwsgi]\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// The cheap scan, without any inotify event, sees names added, removed and
// replaced (new inode), and symlink targets changing.
func TestCheapScan(t *testing.T) {
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	other, _ := filepath.EvalSymlinks(t.TempDir())
	writeN(t, dir, 3)
	target := filepath.Join(other, "t.conf")
	os.WriteFile(target, []byte("t"), 0o644)
	os.Symlink(target, filepath.Join(dir, "link.ini"))
	s := newTestState(t, dir, monitor.Options{})
	if !s.dirs[dir].watched {
		t.Fatal("base not watched")
	}

	os.WriteFile(filepath.Join(dir, "new.ini"), []byte("n"), 0o644)
	os.Remove(filepath.Join(dir, "vassal-0000.ini"))
	tmp := filepath.Join(dir, "tmp")
	os.WriteFile(tmp, []byte("[uwsgi]\n"), 0o644)
	fi, _ := os.Stat(filepath.Join(dir, "vassal-0001.ini"))
	os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
	os.Rename(tmp, filepath.Join(dir, "vassal-0001.ini"))
	os.WriteFile(target, []byte("changed"), 0o644)

	if !s.scan(false) {
		t.Fatal("scan failed")
	}
	got := map[string]string{}
	for _, ev := range s.out {
		got[ev.Key.Name] = ev.Op.String() + " " + ev.Reason
	}
	want := map[string]string{
		"new.ini":         "touch rescan",
		"vassal-0000.ini": "destroy removed",
		"vassal-0001.ini": "touch modified",
		"link.ini":        "touch modified",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cheap scan events %v, want %v", got, want)
	}
	s.out = s.out[:0]
	if s.scan(false); len(s.out) != 0 {
		t.Errorf("second cheap scan emitted %v", s.out)
	}
}

// The cheap scan stats symlinks and nothing else that is unchanged.
func TestCheapScanStatsOnlySymlinks(t *testing.T) {
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	writeN(t, dir, 100)
	s := newTestState(t, dir, monitor.Options{})
	// Change every file in place (same inode, same entry): only a stat
	// would notice. The cheap scan leaves such changes to inotify (whose
	// events are not read here) and must not stat; the full scan must.
	for i := range 100 {
		p := filepath.Join(dir, fmt.Sprintf("vassal-%04d.ini", i))
		os.Chtimes(p, time.Unix(1, 0), time.Unix(1, 0))
	}
	if s.scan(false); len(s.out) != 0 {
		t.Errorf("cheap scan stat()ed unchanged regular files: %d events", len(s.out))
	}
	if s.scan(true); len(s.out) != 100 {
		t.Errorf("full scan found %d changes, want 100", len(s.out))
	}
}

// An unreadable base emits nothing, and the snapshot survives.
func TestScanBaseGone(t *testing.T) {
	parent, _ := filepath.EvalSymlinks(t.TempDir())
	dir := filepath.Join(parent, "d")
	os.Mkdir(dir, 0o755)
	writeN(t, dir, 5)
	s := newTestState(t, dir, monitor.Options{})
	os.Rename(dir, dir+".away")
	if s.scan(true) || len(s.out) != 0 {
		t.Errorf("scan of a missing directory: ok or events %v", s.out)
	}
	os.Rename(dir+".away", dir)
	if !s.scan(false) || len(s.out) != 0 {
		t.Errorf("scan after return: events %v", s.out)
	}
	if len(s.snap) != 5 {
		t.Errorf("snapshot has %d entries", len(s.snap))
	}
}

// confirm makes the next listing of every directory confirm its stat, as
// if confirmDelay had passed since the previous one.
func confirm(s *runState) {
	for _, d := range s.dirs {
		if !d.statSince.IsZero() {
			d.statSince = d.statSince.Add(-confirmDelay)
		}
	}
}

// BenchmarkDirRescan1000 measures the periodic rescan of a watched
// directory of 1000 configs:
//   - cheap: the directory's stat is unchanged (the idle case): one stat
//     and a walk over the snapshot;
//   - list: the directory changed (or is not yet confirmed): getdents and
//     a diff of names and inodes, no stat of unchanged regular files;
//   - full: every entry stat()ed (start, Rescan, overflow, deep scan).
func BenchmarkDirRescan1000(b *testing.B) {
	dir, _ := filepath.EvalSymlinks(b.TempDir())
	writeN(b, dir, 1000)
	s := newTestState(b, dir, monitor.Options{})
	if len(s.snap) != 1000 {
		b.Fatalf("snapshot has %d entries", len(s.snap))
	}
	confirm(s)
	s.scan(false)
	if !s.dirs[dir].confirmed {
		b.Fatal("directory stat not confirmed")
	}
	for _, mode := range []string{"cheap", "list", "full"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if mode == "list" {
					s.dirs[dir].confirmed = false
				}
				if !s.scan(mode == "full") {
					b.Fatal("scan failed")
				}
			}
			if len(s.out) != 0 {
				b.Fatalf("unchanged directory produced %d events", len(s.out))
			}
			if d := s.dirs[dir]; mode == "cheap" && d.unchanged != s.gen {
				b.Fatal("cheap scan listed the directory")
			}
		})
	}
}

// An unchanged, confirmed directory is not listed; symlinks in it are
// still stat()ed, and a change to it is seen by the next scan.
func TestUnchangedDirSkipsListing(t *testing.T) {
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	other, _ := filepath.EvalSymlinks(t.TempDir())
	writeN(t, dir, 3)
	target := filepath.Join(other, "t.conf")
	os.WriteFile(target, []byte("t"), 0o644)
	os.Symlink(target, filepath.Join(dir, "link.ini"))
	s := newTestState(t, dir, monitor.Options{})
	d := s.dirs[dir]
	s.scan(false) // not confirmed yet: lists
	if d.confirmed || d.unchanged == s.gen {
		t.Fatal("confirmed too early")
	}
	confirm(s)
	s.scan(false) // confirms
	if !d.confirmed || d.unchanged == s.gen {
		t.Fatal("second listing did not confirm")
	}
	s.scan(false)
	if d.unchanged != s.gen || len(s.out) != 0 {
		t.Fatalf("unchanged directory: listed=%v events %v", d.unchanged != s.gen, s.out)
	}

	os.WriteFile(target, []byte("changed"), 0o644)
	s.scan(false)
	if d.unchanged != s.gen || len(s.out) != 1 || s.out[0].Key.Name != "link.ini" {
		t.Fatalf("symlink target change: events %v", s.out)
	}
	s.out = s.out[:0]
	os.Remove(target)
	s.scan(false)
	if len(s.out) != 1 || s.out[0].Op != monitor.Destroy {
		t.Fatalf("dangling symlink: events %v", s.out)
	}
	s.out = s.out[:0]

	os.WriteFile(filepath.Join(dir, "new.ini"), []byte("n"), 0o644)
	s.scan(false)
	if d.unchanged == s.gen || d.confirmed || len(s.out) != 1 || s.out[0].Key.Name != "new.ini" {
		t.Fatalf("changed directory: listed=%v events %v", d.unchanged != s.gen, s.out)
	}
	if len(s.snap) != 5 {
		t.Errorf("snapshot has %d entries, want 5", len(s.snap))
	}
}

// TestIdleCPU measures the CPU an idle Run costs with 1000 configs: with
// Freq 100 ms for 3 s it makes 30 rescans (27 cheap, 3 deep), which is
// 90 s of default-period idling. It measures once the directory's stat is
// confirmed (confirmDelay after start). The Go runtime's own idle cost is
// included; FILES_IDLE_CPU=empty measures it with an empty directory.
// Set FILES_IDLE_CPU=1 to run it.
func TestIdleCPU(t *testing.T) {
	if os.Getenv("FILES_IDLE_CPU") == "" {
		t.Skip("set FILES_IDLE_CPU=1 to measure")
	}
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	n := 1000
	if os.Getenv("FILES_IDLE_CPU") == "empty" {
		n = 0
	}
	writeN(t, dir, n)
	ready := make(chan string, 1)
	m, _ := NewDir(dir, monitor.Options{Freq: 100 * time.Millisecond, Ready: ready})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan monitor.Event, 2000)
	go m.Run(ctx, events)
	<-ready
	// Measuring the cost of idle time itself, not waiting for behaviour.
	time.Sleep(confirmDelay + 500*time.Millisecond)
	before := cpu()
	time.Sleep(3 * time.Second)
	used := cpu() - before
	t.Logf("idle CPU for 30 rescans (= 90 s at the default 3 s): %v; per 30 s of default idling: %v", used, used/3)
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
