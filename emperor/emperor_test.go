package emperor_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	_ "github.com/emperor-dev/emperor/monitor/files"
	"github.com/emperor-dev/emperor/monitor/monitortest"
)

// harness runs one Emperor on test-controlled monitors, with the test binary
// as its vassals, reporting to the test.
type harness struct {
	*emperortest.Emperor
	t       *testing.T
	report  string // report socket path, for vassal configs
	reports *emperortest.Inbox[report]
}

type setup struct {
	dirs     []string // dir:// monitors
	mopts    monitor.Options
	monitors []monitor.Monitor
	opts     func(*emperor.Options)
	// role the test binary plays (default "vassal"), and its path (default
	// os.Args[0]).
	role, binary string
	// reportDir holds the report socket (default: a private temp dir).
	reportDir string
	// inject is given the Emperor before it runs.
	inject func(*emperor.Emperor)
}

func startEmperor(t *testing.T, s setup) *harness {
	t.Helper()
	h := &harness{t: t}
	h.report, h.reports = emperortest.ListenJSON[report](t, s.reportDir, "report.sock")
	h.Emperor = emperortest.Start(t, emperortest.Setup{
		Monitors:       s.dirs,
		MonitorOptions: s.mopts,
		Opened:         s.monitors,
		Role:           cmp.Or(s.role, roleVassal),
		Binary:         s.binary,
		Options:        s.opts,
		Before:         s.inject,
	})
	return h
}

// waitReport waits for a report from a test vassal.
func (h *harness) waitReport(what string, match func(report) bool) report {
	h.t.Helper()
	return h.reports.Wait(h.t, what, match)
}

func (h *harness) vassalConfig(extra string) string {
	return fmt.Sprintf("[uwsgi]\nreport = %s\n%s\n", h.report, extra)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeFileAtomic writes path whole: a temporary file renamed into place.
func writeFileAtomic(t *testing.T, path, text string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	writeFile(t, tmp, text)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func alive(pid int) bool {
	return unix.Kill(pid, 0) == nil
}

func TestVassalLifecycleFromDirectory(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}})
	path := filepath.Join(dir, "app.ini")
	writeFile(t, path, h.vassalConfig("name = app"))
	writeFile(t, filepath.Join(dir, "ignored.skel"), h.vassalConfig("name = skel"))

	h.WaitState("app.ini", emperor.Running)
	start := h.waitReport("app starts", func(r report) bool { return r.Event == "start" && r.Name == "app" })

	t.Run("spawned as uWSGI spawns", func(t *testing.T) {
		if start.Cwd != dir {
			t.Errorf("vassal cwd = %q, want its config's directory %q", start.Cwd, dir)
		}
		if want := []string{os.Args[0], "--ini", "app.ini"}; !slices.Equal(start.Argv, want) {
			t.Errorf("argv = %q, want %q", start.Argv, want)
		}
		if want := []int{0, 1, 2, 3}; !slices.Equal(start.Fds, want) {
			t.Errorf("vassal inherited fds %v, want exactly %v", start.Fds, want)
		}
		if !slices.Contains(start.Env, "UWSGI_EMPEROR_FD=3") {
			t.Errorf("env %q lacks UWSGI_EMPEROR_FD=3", start.Env)
		}
		fd0, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", start.Pid))
		if err == nil && fd0 != "/dev/null" {
			t.Errorf("fd 0 is %s, want /dev/null", fd0)
		}
		pgid, _ := unix.Getpgid(start.Pid)
		if pgid != start.Pid {
			t.Errorf("vassal pgid = %d, want its own group %d", pgid, start.Pid)
		}
	})

	// An edit is a reload (byte 1), same process.
	writeFile(t, path, h.vassalConfig("name = app\n# edited"))
	h.waitReport("reload byte", func(r report) bool { return r.Event == "byte" && r.Byte == 1 && r.Pid == start.Pid })

	// Two edits within the same second are both seen (uWSGI misses one).
	now := time.Now().Truncate(time.Second)
	writeFile(t, path, h.vassalConfig("name = app\n# edit 2"))
	os.Chtimes(path, now, now.Add(100*time.Millisecond))
	h.waitReport("second reload", func(r report) bool { return r.Event == "byte" && r.Byte == 1 })
	writeFile(t, path, h.vassalConfig("name = app\n# edit 3"))
	os.Chtimes(path, now, now.Add(200*time.Millisecond))
	h.waitReport("third reload", func(r report) bool { return r.Event == "byte" && r.Byte == 1 })

	// Removal stops it with byte 0 and it leaves the table.
	os.Remove(path)
	h.waitReport("stop byte", func(r report) bool { return r.Event == "byte" && r.Byte == 0 && r.Pid == start.Pid })
	h.WaitState("app.ini", emperor.Absent)
	if alive(start.Pid) {
		t.Errorf("vassal %d still alive after removal", start.Pid)
	}
}

func TestRenameIsStopAndSpawn(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}})
	writeFile(t, filepath.Join(dir, "a.ini"), h.vassalConfig("name = a"))
	h.WaitState("a.ini", emperor.Running)
	if err := os.Rename(filepath.Join(dir, "a.ini"), filepath.Join(dir, "b.ini")); err != nil {
		t.Fatal(err)
	}
	h.WaitState("a.ini", emperor.Absent)
	n := h.WaitState("b.ini", emperor.Running)
	if n.Pid <= 0 {
		t.Errorf("b.ini running without a pid")
	}
}

func TestCrashedVassalIsRespawnedByTheCore(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Throttle = 200 * time.Millisecond
	}})
	// The config never changes, so only the core can bring it back.
	writeFile(t, filepath.Join(dir, "crash.ini"), h.vassalConfig("name = crash\ncrash-after = 300ms\nexit-code = 3"))
	first := h.WaitState("crash.ini", emperor.Running)
	died := h.WaitNote("death", emperortest.IsDeath("crash.ini"))
	if !strings.Contains(died.Reason, "exit status 3") {
		t.Errorf("death reason %q does not give the exit status", died.Reason)
	}
	second := h.WaitState("crash.ini", emperor.Running)
	if second.Pid == first.Pid {
		t.Errorf("respawned with the same pid %d", first.Pid)
	}
	// It keeps crashing before it is loyal: the next respawn is delayed
	// by one throttle step.
	h.WaitNote("second death", func(n emperor.Note) bool {
		return n.Key.Name == "crash.ini" && n.To == emperor.Waiting && strings.Contains(n.Reason, "respawn in 200ms")
	})
	h.WaitState("crash.ini", emperor.Running)
}

func TestRagnarokKillsVassalThatIgnoresStop(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.ReloadMercy = time.Second
	}})
	writeFile(t, filepath.Join(dir, "stubborn.ini"), h.vassalConfig("name = stubborn\nignore-stop = 1"))
	writeFile(t, filepath.Join(dir, "polite.ini"), h.vassalConfig("name = polite"))
	stubborn := h.WaitState("stubborn.ini", emperor.Running)
	polite := h.WaitState("polite.ini", emperor.Running)
	h.waitReport("stubborn started", func(r report) bool { return r.Event == "start" && r.Name == "stubborn" })

	began := time.Now()
	h.Signals <- syscall.SIGTERM
	h.waitReport("stubborn gets the stop byte", func(r report) bool { return r.Name == "stubborn" && r.Event == "byte" && r.Byte == 0 })
	h.waitReport("polite exits", func(r report) bool { return r.Name == "polite" && r.Event == "exit" })
	if err := h.Wait(); err != nil {
		t.Fatalf("Run after Ragnarok: %v", err)
	}
	if took := time.Since(began); took < time.Second {
		t.Errorf("Ragnarok took %s: the stubborn vassal was killed before the mercy", took)
	}
	for _, pid := range []int{stubborn.Pid, polite.Pid} {
		if alive(pid) {
			t.Errorf("vassal %d survived Ragnarok", pid)
		}
	}
}

func TestTwoMonitorsWithTheSameNameDoNotCollide(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	h := startEmperor(t, setup{dirs: []string{d1, d2}})
	writeFile(t, filepath.Join(d1, "app.ini"), h.vassalConfig("name = one"))
	writeFile(t, filepath.Join(d2, "app.ini"), h.vassalConfig("name = two"))
	one := h.waitReport("one", func(r report) bool { return r.Event == "start" && r.Name == "one" })
	two := h.waitReport("two", func(r report) bool { return r.Event == "start" && r.Name == "two" })
	if one.Cwd != d1 || two.Cwd != d2 {
		t.Errorf("cwds %q and %q, want %q and %q", one.Cwd, two.Cwd, d1, d2)
	}
	os.Remove(filepath.Join(d1, "app.ini"))
	h.waitReport("one stops", func(r report) bool { return r.Event == "exit" && r.Name == "one" })
	h.WaitNote("one leaves", func(n emperor.Note) bool {
		return n.To == emperor.Absent && n.Key.Name == "app.ini"
	})
	if !alive(two.Pid) {
		t.Errorf("removing %s/app.ini killed %s/app.ini", d1, d2)
	}
}

func TestVoluntaryStopStaysDownUntilConfigChanges(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}})
	path := filepath.Join(dir, "idle.ini")
	writeFile(t, path, h.vassalConfig("name = idle\nvoluntary-after = 100ms"))
	h.WaitState("idle.ini", emperor.Running)
	h.WaitState("idle.ini", emperor.Stopping)
	h.WaitState("idle.ini", emperor.Disabled)
	// A rescan of the unchanged file does not bring it back...
	h.Signals <- syscall.SIGWINCH
	// ...a changed config does.
	writeFile(t, path, h.vassalConfig("name = idle"))
	n := h.WaitNote("restart after edit", func(n emperor.Note) bool {
		return n.Key.Name == "idle.ini" && n.From == emperor.Disabled
	})
	if n.To != emperor.Waiting || n.Reason != "config changed while disabled" {
		t.Errorf("disabled vassal went to %s because %q: only the edit may bring it back, not the SIGWINCH rescan", n.To, n.Reason)
	}
	h.WaitState("idle.ini", emperor.Running)
}

func TestInlineConfigTravelsOverTheConfigChannel(t *testing.T) {
	fake := monitortest.New("db")
	h := startEmperor(t, setup{monitors: []monitor.Monitor{fake}})
	text := func(gen int) []byte {
		return []byte(h.vassalConfig(fmt.Sprintf("name = inline\ngeneration = %d", gen)))
	}
	fake.Events <- monitor.Event{Op: monitor.Touch, Key: monitor.Key{Name: "inline.ini"}, Config: text(1), Version: monitor.Version{Hash: "1"}}
	start := h.waitReport("inline start", func(r report) bool { return r.Event == "start" })
	if want := []string{os.Args[0], "--ini", "emperor://inline.ini"}; !slices.Equal(start.Argv, want) {
		t.Errorf("argv = %q, want %q", start.Argv, want)
	}
	if !slices.Contains(start.Env, "UWSGI_EMPEROR_FD_CONFIG=4") {
		t.Errorf("env %q lacks UWSGI_EMPEROR_FD_CONFIG=4", start.Env)
	}
	if !strings.Contains(start.Config, "generation = 1") {
		t.Errorf("vassal read config %q", start.Config)
	}
	// A change is a reload; the vassal asks with byte 2 and gets the new
	// text, and only it (not one version behind, bug B9).
	fake.Events <- monitor.Event{Op: monitor.Touch, Key: monitor.Key{Name: "inline.ini"}, Config: text(2), Version: monitor.Version{Hash: "2"}}
	got := h.waitReport("new config", func(r report) bool { return r.Event == "config" })
	if !strings.Contains(got.Config, "generation = 2") {
		t.Errorf("after reload the vassal read %q, want generation 2", got.Config)
	}
	fake.Events <- monitor.Event{Op: monitor.Destroy, Key: monitor.Key{Name: "inline.ini"}}
	h.WaitState("inline.ini", emperor.Absent)
}

func TestSighupReloadsEveryVassal(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}})
	for _, n := range []string{"a", "b"} {
		writeFile(t, filepath.Join(dir, n+".ini"), h.vassalConfig("name = "+n))
		h.WaitState(n+".ini", emperor.Running)
	}
	h.Signals <- syscall.SIGHUP
	got := map[string]bool{}
	h.waitReport("reload bytes", func(r report) bool {
		if r.Event == "byte" && r.Byte == 1 {
			got[r.Name] = true
		}
		return len(got) == 2
	})
}

func TestEnvironmentReachesVassalsRewritten(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Env = append(o.Env, "UWSGI_VASSAL_SOCKET=/tmp/x.sock", "UWSGI_RELOADS=3", "NOTIFY_SOCKET=/run/systemd/notify", "UWSGI_EMPEROR=/etc/vassals")
	}})
	writeFile(t, filepath.Join(dir, "env.ini"), h.vassalConfig("name = env"))
	r := h.waitReport("env", func(r report) bool { return r.Event == "start" })
	if !slices.Contains(r.Env, "UWSGI_SOCKET=/tmp/x.sock") {
		t.Errorf("UWSGI_VASSAL_SOCKET not rewritten: %q", r.Env)
	}
	for _, bad := range []string{"UWSGI_VASSAL_SOCKET", "UWSGI_RELOADS", "NOTIFY_SOCKET", "UWSGI_EMPEROR="} {
		for _, kv := range r.Env {
			if strings.HasPrefix(kv, bad) {
				t.Errorf("vassal env has %q", kv)
			}
		}
	}
}

func TestGlobSeesNewSubdirectories(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "app1"), 0o755)
	h := startEmperor(t, setup{dirs: []string{"glob://" + root + "/app*/app*.*"}})
	writeFile(t, filepath.Join(root, "app1", "app1.ini"), h.vassalConfig("name = one"))
	one := h.waitReport("app1", func(r report) bool { return r.Event == "start" && r.Name == "one" })
	if one.Cwd != filepath.Join(root, "app1") {
		t.Errorf("cwd %q, want the config's directory", one.Cwd)
	}
	// A directory created after the Emperor started, then its config.
	os.Mkdir(filepath.Join(root, "app2"), 0o755)
	writeFile(t, filepath.Join(root, "app2", "app2.ini"), h.vassalConfig("name = two"))
	writeFile(t, filepath.Join(root, "app2", "notes.txt"), "not a vassal")
	h.waitReport("app2", func(r report) bool { return r.Event == "start" && r.Name == "two" })
	os.RemoveAll(filepath.Join(root, "app1"))
	h.waitReport("app1 stops", func(r report) bool { return r.Event == "exit" && r.Name == "one" })
}

func TestSigurgClearsTheRespawnPenalty(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Throttle = time.Hour // without SIGURG the third spawn would wait an hour
		o.MaxThrottle = time.Hour
	}})
	writeFile(t, filepath.Join(dir, "loop.ini"), h.vassalConfig("name = loop\ncrash-after = 50ms"))
	h.WaitNote("penalised death", func(n emperor.Note) bool {
		return n.Key.Name == "loop.ini" && n.To == emperor.Waiting && strings.Contains(n.Reason, "respawn in 1h0m0s")
	})
	h.Signals <- syscall.SIGURG
	h.WaitNote("spawn right after SIGURG", func(n emperor.Note) bool {
		return n.Key.Name == "loop.ini" && n.From == emperor.Waiting && n.To == emperor.Spawning
	})
}

func TestSilentVassalIsKilledAfterTheRequiredHeartbeat(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.RequiredHeartbeat = 2 * time.Second
	}})
	writeFile(t, filepath.Join(dir, "hb.ini"), h.vassalConfig("name = hb\nheartbeat-every = 50ms\nheartbeat-for = 2500ms"))
	h.WaitState("hb.ini", emperor.Running)
	// Beating for 2.5 s is longer than the requirement: it must survive
	// that, and die only once it falls silent. (A beat every 50 ms leaves a
	// loaded machine 2 s of slack.)
	silent := h.waitReport("falls silent", func(r report) bool { return r.Event == "silent" && r.Name == "hb" })
	n := h.WaitNote("killed for its heartbeat", emperortest.IsDeath("hb.ini"))
	if !strings.Contains(n.Reason, "killed by SIGKILL") || !strings.Contains(n.Reason, "no heartbeat") {
		t.Errorf("death reason %q, want a SIGKILL for a missing heartbeat", n.Reason)
	}
	if n.Pid != 0 && n.Pid != silent.Pid {
		t.Errorf("note for pid %d, the silent vassal was %d", n.Pid, silent.Pid)
	}
	h.WaitState("hb.ini", emperor.Running) // respawned
}

func TestStatsServerSpeaksUWSGIsJSON(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "stats.sock")
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) { o.Stats = sock }})
	// A name uWSGI would break its JSON with.
	odd := `we"ird\name.ini`
	// Written aside and renamed in: a plain write may be seen as a new empty
	// config and then a change, which reloads the vassal and counts its
	// bytes twice.
	writeFile(t, filepath.Join(dir, ".odd.tmp"), h.vassalConfig("name = odd\nsend = 1 5 17 26"))
	if err := os.Rename(filepath.Join(dir, ".odd.tmp"), filepath.Join(dir, odd)); err != nil {
		t.Fatal(err)
	}
	n := h.WaitState(odd, emperor.Running)
	h.WaitNote("heartbeat", func(n emperor.Note) bool { return n.IsByte && n.Byte == 26 })

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var s emperor.Stats
	if err := json.NewDecoder(c).Decode(&s); err != nil {
		t.Fatalf("stats are not valid JSON: %v", err)
	}
	// uWSGI names a dir monitor by its directory (stats_compat_test.go).
	if s.Pid != os.Getpid() || len(s.Emperor) != 1 || !filepath.IsAbs(s.Emperor[0]) || len(s.MonitorURIs) != 1 || s.MonitorURIs[0] != "dir://"+s.Emperor[0] {
		t.Errorf("emperor fields: pid %d emperor %q monitor_uris %q", s.Pid, s.Emperor, s.MonitorURIs)
	}
	if len(s.Vassals) != 1 {
		t.Fatalf("vassals %+v", s.Vassals)
	}
	v := s.Vassals[0]
	if v.ID != odd || v.Pid != n.Pid || v.State != "running" || v.Ready != 1 || v.Accepting != 1 || v.Loyal != 1 || v.LastHeartbeat == 0 {
		t.Errorf("vassal %+v", v)
	}
	if v.Bytes["heartbeat"] != 1 || v.Bytes["loyal"] != 1 || v.Bytes["accepting"] != 1 {
		t.Errorf("bytes recorded %v, want one each of spawned, accepting, loyal, heartbeat", v.Bytes)
	}
	if v.Born == 0 || v.FirstRun == 0 || v.Monitor != s.Emperor[0] {
		t.Errorf("born %d first_run %d monitor %q", v.Born, v.FirstRun, v.Monitor)
	}
}

func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var msgs emperortest.Inbox[string]
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			msgs.Add(string(buf[:n]))
		}
	}()
	expect := func(what string) string {
		t.Helper()
		return msgs.Wait(t, "a notify message with "+what, func(m string) bool { return strings.Contains(m, what) })
	}
	// Two vassals exist before the Emperor starts: READY comes after both
	// were spawned by the first scan, not before it.
	h0cfg := func(name string) string { return "[uwsgi]\nname = " + name + "\n" }
	writeFile(t, filepath.Join(dir, "a.ini"), h0cfg("a"))
	writeFile(t, filepath.Join(dir, "b.ini"), h0cfg("b"))
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.NotifySocket = sock
		o.WatchdogEvery = 50 * time.Millisecond
	}})
	ready := expect("READY=1")
	if !strings.Contains(ready, "STATUS=The Emperor is governing") {
		t.Errorf("READY without a status: %q", ready)
	}
	h.WaitState("a.ini", emperor.Running)
	h.WaitState("b.ini", emperor.Running)
	expect("STATUS=The Emperor is governing 2 vassals")
	expect("WATCHDOG=1")
	writeFile(t, filepath.Join(dir, "c.ini"), h0cfg("c"))
	expect("STATUS=The Emperor is governing 3 vassals")
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	expect("STOPPING=1")
	expect("STATUS=The Emperor is buried.")
}

func TestCommandSocket(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	sock := filepath.Join(t.TempDir(), "command.sock")
	h := startEmperor(t, setup{dirs: []string{d1, d2}, opts: func(o *emperor.Options) { o.CommandSocket = sock }})
	writeFile(t, filepath.Join(d1, "app.ini"), h.vassalConfig("name = one"))
	writeFile(t, filepath.Join(d1, "solo.ini"), h.vassalConfig("name = solo"))
	writeFile(t, filepath.Join(d2, "app.ini"), h.vassalConfig("name = two"))
	h.WaitState("solo.ini", emperor.Running)
	solo := h.waitReport("solo", func(r report) bool { return r.Event == "start" && r.Name == "solo" })
	ctx := context.Background()
	send := func(args ...string) (string, error) { return emperor.SendCommand(ctx, sock, args...) }

	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("command socket mode %v, %v: want 0600", fi.Mode(), err)
	}
	if _, err := send("reload", "solo.ini"); err != nil {
		t.Fatal(err)
	}
	h.waitReport("reload byte", func(r report) bool { return r.Name == "solo" && r.Event == "byte" && r.Byte == 1 })

	// A name in two monitors must be disambiguated.
	h.waitReport("one", func(r report) bool { return r.Event == "start" && r.Name == "one" })
	h.waitReport("two", func(r report) bool { return r.Event == "start" && r.Name == "two" })
	if _, err := send("reload", "app.ini"); err == nil || !strings.Contains(err.Error(), "several monitors") {
		t.Errorf("ambiguous reload: %v", err)
	}
	real2, _ := filepath.EvalSymlinks(d2)
	if _, err := send("reload", "app.ini", "dir://"+real2); err != nil {
		t.Errorf("reload with monitor: %v", err)
	}
	h.waitReport("two reloads", func(r report) bool { return r.Name == "two" && r.Event == "byte" && r.Byte == 1 })

	// stop keeps it down, even across a config change; start brings it back.
	if _, err := send("stop", "solo.ini"); err != nil {
		t.Fatal(err)
	}
	h.WaitState("solo.ini", emperor.Disabled)
	if alive(solo.Pid) {
		t.Errorf("stopped vassal %d alive", solo.Pid)
	}
	writeFile(t, filepath.Join(d1, "solo.ini"), h.vassalConfig("name = solo\n# changed"))
	if _, err := send("start", "solo.ini"); err != nil {
		t.Fatal(err)
	}
	n := h.WaitNote("solo restarts", func(n emperor.Note) bool {
		return n.Key.Name == "solo.ini" && n.From == emperor.Disabled
	})
	if n.Reason != "started by command" {
		t.Errorf("solo left disabled because %q, want the start command (a config change must not restart a stopped vassal)", n.Reason)
	}
	h.WaitState("solo.ini", emperor.Running)

	if got, err := send("blacklist-clear"); err != nil || !strings.HasPrefix(got, "cleared") {
		t.Errorf("blacklist-clear: %q %v", got, err)
	}
	if _, err := send("rescan"); err != nil {
		t.Errorf("rescan: %v", err)
	}
	if _, err := send("explode"); err == nil {
		t.Error("unknown command accepted")
	}
	if _, err := send("reload", "nosuch.ini"); err == nil {
		t.Error("reload of an unknown vassal accepted")
	}
}

func TestPrometheusMetrics(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) { o.Metrics = addr }})
	// Written whole (renamed into place): a file seen half-written and
	// then complete is a changed config, whose reload would count again.
	writeFileAtomic(t, filepath.Join(dir, "ok.ini"), h.vassalConfig("name = ok\nsend = 1 5 17"))
	writeFileAtomic(t, filepath.Join(dir, "crash.ini"), h.vassalConfig("name = crash"))
	h.WaitNote("ok accepting", emperortest.IsByte("ok.ini", 5))
	// Killed once it is ready, so its readiness is counted before it dies.
	crash := h.WaitNote("crash accepting", emperortest.IsByte("crash.ini", 5))
	if err := unix.Kill(crash.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.WaitNote("crash respawned", emperortest.IsDeath("crash.ini"))
	// The restart was counted in the turn of the loop that sent the note.
	body, err := emperortest.Body("http://" + addr + "/metrics")
	if err != nil || !strings.Contains(body, `emperor_restarts_total{reason="died"} 1`) {
		t.Fatalf("metrics do not show the restart (err %v):\n%s", err, body)
	}
	for _, want := range []string{
		`emperor_vassal_up{vassal="ok.ini",monitor="dir://`,
		`emperor_vassal_loyal{vassal="ok.ini",monitor="dir://`,
		`emperor_vassals{state="running"}`,
		"emperor_spawns_total",
		"emperor_config_to_ready_seconds_count 2", // ok.ini and crash.ini's first start; respawns are not config changes
		`emperor_config_to_ready_seconds_bucket{le="+Inf"} 2`,
		"# TYPE emperor_config_to_ready_seconds histogram",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// With emperor-wait-for-command a new vassal stays suspended, even across
// a config change, until a start command; a name on the ignore list and a
// vassal already running are not held.
func TestWaitForCommandSuspendsNewVassals(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "command.sock")
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.CommandSocket, o.WaitForCommand, o.WaitForCommandIgnore = sock, true, []string{"eager.ini"}
	}})
	writeFile(t, filepath.Join(dir, "lazy.ini"), h.vassalConfig("name = lazy"))
	writeFile(t, filepath.Join(dir, "eager.ini"), h.vassalConfig("name = eager"))
	h.waitReport("eager starts at once", func(r report) bool { return r.Event == "start" && r.Name == "eager" })
	n := h.WaitState("lazy.ini", emperor.Disabled)
	if !strings.Contains(n.Reason, "emperor-wait-for-command") {
		t.Errorf("lazy.ini disabled because %q, want the wait for a command", n.Reason)
	}
	writeFile(t, filepath.Join(dir, "lazy.ini"), h.vassalConfig("name = lazy\n# changed"))
	send := func(args ...string) (string, error) { return emperor.SendCommand(context.Background(), sock, args...) }
	if _, err := send("start", "lazy.ini"); err != nil {
		t.Fatal(err)
	}
	left := h.WaitNote("lazy leaves disabled", func(n emperor.Note) bool { return n.Key.Name == "lazy.ini" && n.From == emperor.Disabled })
	if left.Reason != "started by command" {
		t.Errorf("lazy.ini left suspension because %q, want the start command (a config change must not start it)", left.Reason)
	}
	h.waitReport("lazy starts", func(r report) bool { return r.Event == "start" && r.Name == "lazy" })
	h.WaitState("lazy.ini", emperor.Running)
}
