package emperor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
)

// countFds counts this process's open fds.
func countFds(t *testing.T) int {
	t.Helper()
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(names) - 1 // less the directory being read
}

// fdLinks lists where the fds in dir (a /proc fd directory) point.
func fdLinks(t *testing.T, dir string) []string {
	t.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil // a thread that ended meanwhile
	}
	var links []string
	for _, n := range names {
		if l, err := os.Readlink(filepath.Join(dir, n.Name())); err == nil {
			links = append(links, l)
		}
	}
	return links
}

// The Emperor holds one fd per vassal configured from a file, its control
// socket: exits come from the SIGCHLD reaper, not from a pidfd each.
func TestEmperorHoldsOneFdPerVassal(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}})
	h.WaitScanned()
	before, known := countFds(t), fdLinks(t, "/proc/self/fd")
	for i := range n {
		writeFileAtomic(t, filepath.Join(dir, fmt.Sprintf("app%02d.ini", i)), h.vassalConfig(fmt.Sprintf("name = app%02d", i)))
	}
	for i := range n {
		h.WaitBytes(5, fmt.Sprintf("app%02d.ini", i))
	}
	after := countFds(t)
	t.Logf("%d fds before, %d with %d vassals: %.2f per vassal", before, after, n, float64(after-before)/n)
	if after-before > n {
		t.Errorf("%d vassals cost the Emperor %d fds, want at most one each", n, after-before)
	}
	// The spawner's thread has an fd table of its own, without the
	// vassals' channels: a spawn copies (and its exec closes) the few fds
	// in it, not one per vassal, so spawning does not slow as the fleet
	// grows.
	channels := slices.DeleteFunc(fdLinks(t, "/proc/self/fd"), func(l string) bool {
		return !strings.HasPrefix(l, "socket:") || slices.Contains(known, l)
	})
	if len(channels) < n {
		t.Fatalf("%d new sockets in the process's fd table, want one per vassal (%d)", len(channels), n)
	}
	private := false
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		links := fdLinks(t, filepath.Join("/proc/self/task", task.Name(), "fd"))
		if len(links) > 0 && !slices.ContainsFunc(channels, func(l string) bool { return slices.Contains(links, l) }) {
			private = true
		}
	}
	if !private {
		t.Errorf("no thread has an fd table without the vassals' channels: every spawn copies them all")
	}
	// Their exits still arrive, with their status.
	for i := range n / 2 {
		os.Remove(filepath.Join(dir, fmt.Sprintf("app%02d.ini", i)))
	}
	for i := range n / 2 {
		gone := h.WaitState(fmt.Sprintf("app%02d.ini", i), emperor.Absent)
		if !strings.Contains(gone.Reason, "exit status 0") {
			t.Errorf("app%02d.ini gone because %q, want its exit status 0", i, gone.Reason)
		}
	}
	if left := countFds(t); left-before > n-n/2 {
		t.Errorf("%d fds after %d of %d vassals left, want at most %d more than before", left, n/2, n, n-n/2)
	}
}

// The reaper never takes a child that is not a vassal's: the shell of an
// exec-as-emperor hook is reaped by os/exec, which reads its exit status,
// while vassals crash and respawn around it.
func TestReaperLeavesHookChildrenToOsExec(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.ExecAsEmperor = []string{"exit 7"}
		o.NoBlacklist = true    // crashes respawn at once
		o.ThrottleBurst = -1    // and are not throttled
		o.StableRun = time.Hour // nor ever stable
	}})
	const vassals, hooks = 4, 60
	for i := range vassals {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("crash%d.ini", i)), h.vassalConfig(fmt.Sprintf("name = crash%d\ncrash-after = 20ms\nexit-code = 3", i)))
	}
	for i := range hooks {
		n := h.WaitNote(fmt.Sprintf("hook outcome %d", i), func(n emperor.Note) bool { return strings.HasPrefix(n.Reason, "exec-as-emperor ") })
		if !strings.HasSuffix(n.Reason, `"exit 7": exit status 7`) {
			t.Fatalf("hook outcome %q, want its exit status 7 (a reaper that took the hook's shell leaves os/exec without it)", n.Reason)
		}
	}
	for i := range vassals {
		d := h.WaitNote("a crash", emperortest.IsDeath(fmt.Sprintf("crash%d.ini", i)))
		if !strings.Contains(d.Reason, ": exit status 3") {
			t.Errorf("death %q, want exit status 3", d.Reason)
		}
	}
	t.Logf("the reaper found a zombie not its own first %d times", h.Log.Count("the next zombie is not a vassal's"))
	if n := h.Log.Count("reaped by someone else"); n > 0 {
		t.Errorf("%d vassal exits lost:\n%s", n, h.Log)
	}
}

// fdLimitedEmperor runs an Emperor over the directory args[0], its stats
// on the unix socket args[1] and its metrics on args[2], with this binary
// as its vassals (reporting as their configs say), under an RLIMIT_NOFILE
// of args[3], until SIGTERM. It logs as text on stderr.
func fdLimitedEmperor(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	limit, _ := strconv.ParseUint(args[3], 10, 64)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		log.Error("setrlimit", "err", err)
		return 1
	}
	m, err := monitor.Open(args[0], monitor.Options{Freq: time.Second, Logger: log})
	if err != nil {
		log.Error("monitor", "err", err)
		return 1
	}
	exe, _ := os.Executable()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		<-c
		cancel()
	}()
	em, err := emperor.New(emperor.Options{
		Monitors: []monitor.Monitor{m}, Binary: exe, Env: emperortest.RoleEnviron(roleVassal),
		Logger: log, Signals: make(chan os.Signal, 1), Stats: args[1], Metrics: args[2],
		ReloadMercy: 10 * time.Second,
	})
	if err != nil {
		log.Error("emperor", "err", err)
		return 1
	}
	if err := em.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

// askStats reads a stats (or, with request, metrics) socket's answer.
func askSocket(t *testing.T, path, request string) []byte {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testkit.Deadline))
	if request != "" {
		io.WriteString(c, request)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func limitedStats(t *testing.T, path string) *emperor.Stats {
	t.Helper()
	var s emperor.Stats
	if err := json.Unmarshal(askSocket(t, path, ""), &s); err != nil {
		t.Fatalf("stats: %v", err)
	}
	return &s
}

// byState lists the vassals of a snapshot in each state (with its sub).
func byState(s *emperor.Stats) map[string][]emperor.VassalStats {
	out := map[string][]emperor.VassalStats{}
	for _, v := range s.Vassals {
		k := v.State
		if v.Sub != "" {
			k += "/" + v.Sub
		}
		out[k] = append(out[k], v)
	}
	return out
}

// An Emperor whose fd limit allows fewer vassals than it is given spawns
// as many as fit, says so once, counts the spawns that found no fd, keeps
// the others running, and spawns the waiting ones by itself once vassals
// are removed.
func TestFdShortageWaitsAndRecovers(t *testing.T) {
	const limit = 64
	dir, tmp := t.TempDir(), t.TempDir()
	reportPath, reports := emperortest.ListenJSON[report](t, tmp, "report.sock")
	statsPath, metricsPath := filepath.Join(tmp, "stats.sock"), filepath.Join(tmp, "metrics.sock")
	log := &testkit.Log{}
	exe, _ := os.Executable()
	cmd := exec.Command(exe, dir, statsPath, metricsPath, strconv.Itoa(limit))
	cmd.Env = emperortest.RoleEnviron(roleFdLimitedEmperor)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("Emperor log:\n%s", log)
		}
	})
	budget := log.WaitFor(t, "fd budget")
	m := regexp.MustCompile(` vassals=(\d+)`).FindStringSubmatch(budget)
	if m == nil || !strings.Contains(budget, fmt.Sprintf("limit=%d ", limit)) {
		t.Fatalf("budget line %q: want the limit %d and the vassals it allows", budget, limit)
	}
	allowed, _ := strconv.Atoi(m[1])
	if allowed < 4 || allowed > limit {
		t.Fatalf("budget line %q: %d vassals allowed under a limit of %d", budget, allowed, limit)
	}
	log.WaitFor(t, "the Emperor is ruling")
	want := allowed + 6
	for i := range want {
		writeFileAtomic(t, filepath.Join(dir, fmt.Sprintf("app%02d.ini", i)),
			fmt.Sprintf("[uwsgi]\nreport = %s\nname = app%02d\n", reportPath, i))
	}

	// Some run, the rest wait for an fd, and the log said so once.
	var s *emperor.Stats
	var states map[string][]emperor.VassalStats
	settled := func() bool {
		s = limitedStats(t, statsPath)
		states = byState(s)
		return len(states["running"]) > 0 && len(states["waiting/fds"]) > 0 &&
			len(states["running"])+len(states["waiting/fds"]) == want
	}
	if !log.Await(testkit.Deadline, settled) {
		t.Fatalf("never %d vassals running or waiting for an fd, some of each: %v", want, states)
	}
	running := states["running"]
	waiting := len(states["waiting/fds"])
	t.Logf("%d of %d vassals running under a limit of %d fds (%d allowed), %d waiting", len(running), want, limit, allowed, waiting)
	if s.Fds.Limit != limit || s.Fds.Exhausted < uint64(waiting) || s.Fds.Bursts != 1 || s.Fds.Waiting != waiting || s.Fds.InUse == 0 {
		t.Errorf("stats fds %+v: want the limit %d, at least %d spawns without an fd, one burst, %d waiting", s.Fds, limit, waiting, waiting)
	}
	metrics := string(askSocket(t, metricsPath, "GET /metrics HTTP/1.0\r\n\r\n"))
	if !regexp.MustCompile(`(?m)^emperor_fd_exhausted_total [1-9]`).MatchString(metrics) {
		t.Errorf("metrics do not count the spawns without an fd:\n%s", metrics)
	}
	// Retries go on (on their timer) without a line each, and the vassals
	// running keep running.
	exhausted := s.Fds.Exhausted
	if !log.Await(testkit.Deadline, func() bool { return limitedStats(t, statsPath).Fds.Exhausted >= exhausted+2 }) {
		t.Fatalf("the waiting vassals were not retried")
	}
	if n := log.Count("out of file descriptors"); n != 1 {
		t.Errorf("%d lines say the fds ran out, want one for the burst", n)
	}
	s = limitedStats(t, statsPath)
	pids := map[string]int{}
	for _, v := range byState(s)["running"] {
		pids[v.ID] = v.Pid
	}
	for _, v := range running {
		if pids[v.ID] != v.Pid {
			t.Errorf("%s ran as pid %d, now %d", v.ID, v.Pid, pids[v.ID])
		}
	}

	// Removing running vassals frees fds: the waiting ones start without
	// anyone's help.
	removed := map[string]bool{}
	for _, v := range running[:min(len(running), waiting+3)] {
		removed[v.ID] = true
		os.Remove(filepath.Join(dir, v.ID))
	}
	recovered := func() bool {
		s = limitedStats(t, statsPath)
		states = byState(s)
		return len(states["running"]) == want-len(removed) && len(s.Vassals) == want-len(removed)
	}
	if !log.Await(testkit.Deadline, recovered) {
		t.Fatalf("after removing %d vassals, not every other one runs: %v", len(removed), states)
	}
	for _, v := range states["running"] {
		if removed[v.ID] {
			t.Errorf("%s runs after its config was removed", v.ID)
		}
		reports.Wait(t, v.ID+" started", func(r report) bool { return r.Event == "start" && r.Pid == v.Pid })
	}
	log.WaitFor(t, "file descriptors free again")
	if n := log.Count("out of file descriptors"); n != 1 {
		t.Errorf("%d lines say the fds ran out, want one for the burst", n)
	}
	if s.Fds.Waiting != 0 || s.Fds.Bursts != 1 {
		t.Errorf("stats fds %+v after recovery: want none waiting, one burst", s.Fds)
	}
}

// A vassal with an inline config costs the Emperor two fds: the config
// channel stays open for the config requests (byte 2) after a reload.
func TestInlineConfigVassalHoldsTwoFds(t *testing.T) {
	const n = 10
	fake := monitortest.New("db")
	h := startEmperor(t, setup{monitors: []monitor.Monitor{fake}})
	if _, err := h.Snapshot(context.Background()); err != nil { // the loop runs: Run's own fds are open
		t.Fatal(err)
	}
	before := countFds(t)
	for i := range n {
		name := fmt.Sprintf("db%02d.ini", i)
		fake.Events <- monitor.Event{Op: monitor.Touch, Key: monitor.Key{Name: name}, Config: []byte(h.vassalConfig("name = " + name)), Version: monitor.Version{Hash: "1"}}
	}
	for i := range n {
		h.WaitBytes(5, fmt.Sprintf("db%02d.ini", i))
	}
	after := countFds(t)
	t.Logf("%d fds before, %d with %d inline-config vassals: %.2f per vassal", before, after, n, float64(after-before)/n)
	if after-before > 2*n {
		t.Errorf("%d inline-config vassals cost the Emperor %d fds, want at most two each", n, after-before)
	}
}

// The spawner's own fd table keeps no copy of the files the process had
// open when it started: a pipe whose write end the process closes reads
// EOF, as it would without the Emperor (a copy would keep another
// goroutine's child pipe open for ever).
func TestSpawnerTableHoldsNoCopyOfOpenFiles(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}})
	h.WaitScanned() // the spawner made its table before the first scan
	writeFileAtomic(t, filepath.Join(dir, "app.ini"), h.vassalConfig("name = app"))
	h.WaitBytes(5, "app.ini") // and spawned from it
	w.Close()
	if err := unix.SetNonblock(int(r.Fd()), true); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if n, err := unix.Read(int(r.Fd()), b[:]); n != 0 || err != nil {
		t.Errorf("read after the only write end was closed: %d bytes, %v; want EOF (a copy of the write end is open somewhere)", n, err)
	}
}
