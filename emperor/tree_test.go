package emperor_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// killAll cleans up after a test that expects some pids to survive.
func killAll(pids []int) {
	for _, p := range pids {
		unix.Kill(p, unix.SIGKILL)
	}
}

// Without a cgroup, a vassal that exits on its stop byte takes its process
// group with it: 50 children it never waited for, started in its group,
// die when it is reaped. Before, all of them kept running.
func TestStopEndsTheVassalsProcessGroupWithoutACgroup(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}})
	path := filepath.Join(dir, "forker.ini")
	writeFile(t, path, h.vassalConfig("name = forker\nchildren = 50"))
	kids := h.waitReport("children started", func(r report) bool { return r.Event == "children" && r.Name == "forker" })
	group := kids.Fds
	defer killAll(kids.Fds)
	if len(group) != 50 {
		t.Fatalf("%d children in the group, want 50", len(group))
	}
	h.WaitState("forker.ini", emperor.Running)
	os.Remove(path) // byte 0: the vassal exits by itself
	h.waitReport("stop byte", func(r report) bool { return r.Name == "forker" && r.Event == "byte" && r.Byte == 0 })
	h.WaitState("forker.ini", emperor.Absent)
	if left := testkit.WaitGone(group); len(left) > 0 {
		t.Errorf("%d of the vassal's 50 children outlived it: %v", len(left), left)
	}
	// A daemon that leaves the group with setsid: only a cgroup catches it
	// (below).
}

// The same after a crash: exit status 3, children gone.
func TestCrashEndsTheVassalsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Throttle = time.Hour // no respawn within the test
	}})
	writeFile(t, filepath.Join(dir, "crasher.ini"), h.vassalConfig("name = crasher\nchildren = 10\ncrash-after = 200ms\nexit-code = 3"))
	kids := h.waitReport("children started", func(r report) bool { return r.Event == "children" && r.Name == "crasher" })
	defer killAll(kids.Fds)
	h.waitReport("crash", func(r report) bool { return r.Name == "crasher" && r.Event == "exit" })
	if left := testkit.WaitGone(kids.Fds); len(left) > 0 {
		t.Errorf("%d of the crashed vassal's 10 children outlived it: %v", len(left), left)
	}
}

// With a cgroup, even the daemon that escaped the process group with setsid
// dies with its vassal, and the cgroup is removed.
func TestCgroupEndsTheEscapedDaemon(t *testing.T) {
	testenv.Root(t)
	if _, err := cgroup.Open(); err != nil {
		testenv.Missing(t, "cgroups: "+err.Error())
	}
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Cgroup = true
	}})
	path := filepath.Join(dir, "daemonizer.ini")
	writeFile(t, path, h.vassalConfig("name = daemonizer\nchildren = 5\ndaemon = 1"))
	kids := h.waitReport("children started", func(r report) bool { return r.Event == "children" && r.Name == "daemonizer" })
	defer killAll(kids.Fds)
	daemon := kids.Fds[len(kids.Fds)-1]
	sid, _ := unix.Getsid(daemon)
	if sid != daemon {
		t.Fatalf("the daemon %d is in session %d, want its own", daemon, sid)
	}
	h.WaitState("daemonizer.ini", emperor.Running)
	os.Remove(path)
	h.WaitState("daemonizer.ini", emperor.Absent)
	if left := testkit.WaitGone(kids.Fds); len(left) > 0 {
		t.Errorf("%d of 6 processes outlived their vassal's cgroup: %v", len(left), left)
	}
}

// A vassal that ignores its stop byte is SIGKILLed, with its process group,
// once the curse tolerance has passed: not only in Ragnarok.
func TestStopIgnoredIsKilledAfterTheCurseTolerance(t *testing.T) {
	dir := t.TempDir()
	const tolerance = 500 * time.Millisecond
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.CurseTolerance = tolerance
	}})
	path := filepath.Join(dir, "deaf.ini")
	writeFile(t, path, h.vassalConfig("name = deaf\nignore-stop = 1\nchildren = 5"))
	kids := h.waitReport("children started", func(r report) bool { return r.Event == "children" && r.Name == "deaf" })
	defer killAll(kids.Fds)
	run := h.WaitState("deaf.ini", emperor.Running)
	began := time.Now()
	os.Remove(path)
	h.waitReport("stop byte, ignored", func(r report) bool { return r.Name == "deaf" && r.Event == "byte" && r.Byte == 0 })
	h.WaitState("deaf.ini", emperor.Absent)
	if took := time.Since(began); took < tolerance {
		t.Errorf("killed after %s, before the curse tolerance of %s", took, tolerance)
	}
	h.Log.WaitFor(t, "did not exit within the curse tolerance", "deaf.ini")
	if left := testkit.WaitGone(append([]int{run.Pid}, kids.Fds...)); len(left) > 0 {
		t.Errorf("still running after the curse tolerance: %v", left)
	}
}
