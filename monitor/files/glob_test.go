package files_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/files"
	"github.com/emperor-dev/emperor/monitor/monitortest"
)

func newGlob(t *testing.T, pattern string, opts monitor.Options) *monitortest.Harness {
	t.Helper()
	return monitortest.Start(t, files.NewGlob, pattern, opts)
}

// A pattern with a wildcard directory sees directories created later, and
// the files created in them right away (Freq is an hour: inotify only).
func TestGlob_NewSubdirectories(t *testing.T) {
	root := realDir(t)
	for _, f := range []string{"app1/app1.ini", "app1/x.ini", "app1/.app1.ini", "app2/app2.yml",
		"app2/app2.skel", "other/other.ini", "app0.ini"} {
		mkdir(t, filepath.Dir(filepath.Join(root, f)))
		writeFile(t, filepath.Join(root, f), "x")
	}
	mkdir(t, filepath.Join(root, "app1", "appdir.ini"))
	pattern := root + "/app*/app*.*"
	h := newGlob(t, pattern, monitor.Options{})
	if h.M.ID() != "glob://"+pattern || h.M.String() != h.M.ID() {
		t.Errorf("ID %q String %q", h.M.ID(), h.M.String())
	}
	evs := h.Drain()
	got := names(evs, monitor.Touch)
	n1, n2 := root+"/app1/app1.ini", root+"/app2/app2.yml"
	if len(evs) != 2 || got[n1].Op == 0 || got[n2].Op == 0 {
		t.Fatalf("initial events %s, want Touch %s and %s", monitortest.Describe(evs), n1, n2)
	}
	if got[n1].Path != n1 || got[n1].Key.Monitor != h.M.ID() {
		t.Errorf("event %+v", got[n1])
	}

	// New directories, the config written at once after mkdir.
	for _, app := range []string{"app3", "app4", "app5"} {
		mkdir(t, filepath.Join(root, app))
		writeFile(t, filepath.Join(root, app, app+".ini"), "x")
	}
	mark := h.Mark()
	h.WaitSet(mark, monitortest.Touch(root+"/app3/app3.ini"), monitortest.Touch(root+"/app4/app4.ini"), monitortest.Touch(root+"/app5/app5.ini"))

	// The new directory is watched: edits are seen.
	p3 := filepath.Join(root, "app3", "app3.ini")
	writeFile(t, p3, "edited")
	setMtime(t, p3, stamp.Add(3))
	h.WaitFor("Touch app3 edited", func(ev monitor.Event) bool {
		return ev.Key.Name == p3 && ev.Version.ModTime == stamp.Add(3).UnixNano()
	})

	// A directory removed: its configs are gone. Renamed: gone and new.
	if err := os.RemoveAll(filepath.Join(root, "app1")); err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(monitor.Destroy, n1)
	mark = h.Mark()
	if err := os.Rename(filepath.Join(root, "app2"), filepath.Join(root, "app9")); err != nil {
		t.Fatal(err)
	}
	h.WaitSet(mark, monitortest.Destroy(n2), monitortest.Touch(root+"/app9/app2.yml"))

	// Non-matching names and directories.
	writeFile(t, filepath.Join(root, "app3", "notes.txt"), "x")
	writeFile(t, filepath.Join(root, "app3", "b.ini"), "x")
	mkdir(t, filepath.Join(root, "zzz"))
	writeFile(t, filepath.Join(root, "zzz", "app.ini"), "x")
	h.ExpectNone(barrier(h, filepath.Join(root, "app3"), root+"/app3/", "app"), "non-matching names")
}

// A relative pattern is resolved against the working directory once, and
// names keep the pattern's spelling.
func TestGlob_RelativePattern(t *testing.T) {
	root := realDir(t)
	mkdir(t, filepath.Join(root, "conf"))
	writeFile(t, filepath.Join(root, "conf", "a.ini"), "x")
	t.Chdir(root)
	h := monitortest.Build(t, files.NewGlob, "./conf/*.ini", monitor.Options{})
	t.Chdir(t.TempDir())
	h.Start()
	h.WaitReady()
	if h.M.ID() != "glob://./conf/*.ini" {
		t.Errorf("ID %q", h.M.ID())
	}
	ev := h.WaitEvent(monitor.Touch, "conf/a.ini")
	if ev.Path != filepath.Join(root, "conf", "a.ini") {
		t.Errorf("Path %q, want absolute", ev.Path)
	}
	writeFile(t, filepath.Join(root, "conf", "b.ini"), "x")
	ev = h.WaitEvent(monitor.Touch, "conf/b.ini")
	if ev.Path != filepath.Join(root, "conf", "b.ini") {
		t.Errorf("Path %q", ev.Path)
	}
}

// A pattern that matches nothing, not even its base directory, is fine and
// starts matching when the directory appears.
func TestGlob_BaseAppearsLater(t *testing.T) {
	root := realDir(t)
	base := filepath.Join(root, "later")
	h := newGlob(t, base+"/*.ini", monitor.Options{Freq: 20 * time.Millisecond})
	h.ExpectNone(h.Drain(), "nothing matches")
	mkdir(t, base)
	writeFile(t, filepath.Join(base, "a.ini"), "x")
	h.WaitEvent(monitor.Touch, base+"/a.ini")
	// Watched from then on.
	writeFile(t, filepath.Join(base, "b.ini"), "x")
	h.WaitEvent(monitor.Touch, base+"/b.ini")
	if h.Log.Count("WARN ") != 0 {
		t.Errorf("a missing pattern base is not a warning: %s", h.Log.String())
	}
}

func TestGlob_LiteralPattern(t *testing.T) {
	root := realDir(t)
	p := filepath.Join(root, "app.ini")
	h := newGlob(t, p, monitor.Options{})
	writeFile(t, p, "x")
	h.WaitEvent(monitor.Touch, p)
	writeFile(t, filepath.Join(root, "other.ini"), "x")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	ev := h.WaitEvent(monitor.Destroy, p)
	if ev.Path != p {
		t.Errorf("Path %q", ev.Path)
	}
	for _, e := range h.Seen {
		if e.Key.Name != p {
			t.Errorf("unexpected %s", monitortest.Describe([]monitor.Event{e}))
		}
	}
}

func TestNewGlob_Errors(t *testing.T) {
	for _, p := range []string{"", "/tmp/[", "/"} {
		if _, err := files.NewGlob(p, monitor.Options{}); err == nil {
			t.Errorf("NewGlob(%q) accepted", p)
		}
	}
}
