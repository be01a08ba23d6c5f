package emperor_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
	"github.com/emperor-dev/emperor/namespaces"
	"github.com/emperor-dev/emperor/protocol"
)

// publicDir makes a directory every user can enter, with a copy of the test
// binary in it, for vassals that run as another user.
func publicDir(t *testing.T) (dir, binary string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "emperor-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "vassal.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(binary, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	return dir, binary
}

func TestTyrantRunsVassalsAsTheConfigOwner(t *testing.T) {
	testenv.Root(t)
	pub, binary := publicDir(t)
	vassals := filepath.Join(pub, "vassals")
	os.Mkdir(vassals, 0o755)
	h := startEmperor(t, setup{dirs: []string{vassals}, reportDir: pub, opts: func(o *emperor.Options) {
		o.Tyrant = true
		o.Binary = binary
	}})

	tenant := filepath.Join(vassals, "tenant.ini")
	writeFile(t, tenant, h.vassalConfig("name = tenant"))
	if err := os.Chown(tenant, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(vassals, "rooted.ini"), h.vassalConfig("name = rooted"))

	r := h.waitReport("tenant starts", func(r report) bool { return r.Event == "start" && r.Name == "tenant" })
	if r.UID != 65534 {
		t.Errorf("tenant vassal runs as uid %d, want 65534 (owner of its config)", r.UID)
	}
	n := h.WaitState("rooted.ini", emperor.Disabled)
	if !strings.Contains(n.Reason, "root") {
		t.Errorf("refusal reason %q does not say root", n.Reason)
	}

	// Giving the config to another tenant restarts the vassal as them;
	// giving it to root stops it for good.
	if err := os.Chown(tenant, 65533, 65533); err != nil {
		t.Fatal(err)
	}
	h.waitReport("tenant restarts as the new owner", func(r report) bool {
		return r.Event == "start" && r.Name == "tenant" && r.UID == 65533
	})
	if err := os.Chown(tenant, 0, 0); err != nil {
		t.Fatal(err)
	}
	h.WaitState("tenant.ini", emperor.Disabled)
	if alive(r.Pid) {
		t.Errorf("vassal of the old owner %d still alive", r.Pid)
	}
}

func TestNamespacesFromUseClone(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	ns, err := namespaces.Parse("pid,uts,ipc,fs")
	if err != nil {
		t.Fatal(err)
	}
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) { o.Namespaces = ns }})
	writeFile(t, filepath.Join(dir, "ns.ini"), h.vassalConfig("name = ns"))
	run := h.WaitState("ns.ini", emperor.Running)
	r := h.waitReport("ns vassal starts", func(r report) bool { return r.Event == "start" })
	if r.Pid != 1 {
		t.Errorf("vassal sees itself as pid %d, want 1 in its own pid namespace", r.Pid)
	}
	for _, kind := range []string{"pid", "uts", "ipc", "mnt"} {
		mine, _ := os.Readlink("/proc/self/ns/" + kind)
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", run.Pid, kind))
		if err != nil || its == mine {
			t.Errorf("vassal %s namespace %q, Emperor's %q (err %v): want a new one", kind, its, mine, err)
		}
	}
}

// isoSetup starts an Emperor whose vassals are isolation vassals, with
// their configs in a public directory so they may run as other users.
func isoSetup(t *testing.T, opts func(*emperor.Options)) (h *harness, vassals, report string, reports isoInbox) {
	t.Helper()
	pub, binary, vassals, report, reports := tenantDirs(t)
	h = startEmperor(t, setup{dirs: []string{vassals}, reportDir: pub, role: roleIsolation, binary: binary, opts: opts})
	return h, vassals, report, reports
}

// isoConfig is an isolation vassal's config.
func isoConfig(report, name, extra string) string {
	return fmt.Sprintf("[uwsgi]\nname = %s\niso-report = %s\n%s\n", name, report, extra)
}

// cgroupLine returns the path of a /proc/PID/cgroup line for a hierarchy
// ("memory", or "" for v2).
func cgroupLine(text, ctrl string) string {
	for _, line := range strings.Split(text, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if (ctrl == "" && parts[0] == "0") || (ctrl != "" && slices.Contains(strings.Split(parts[1], ","), ctrl)) {
			return parts[2]
		}
	}
	return ""
}

func TestCgroupHoldsTheWholeTreeAndGoesAway(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	h, vassals, report, reports := isoSetup(t, func(o *emperor.Options) {
		o.CgroupLimits = cgroup.Limits{Memory: 96 << 20, Pids: 64}
		o.Metrics = addr
	})
	writeFile(t, filepath.Join(vassals, "tree.ini"), isoConfig(report, "tree", "daemon = 1"))
	run := h.WaitState("tree.ini", emperor.Running)
	r := reports.wait(t, "tree")
	if r.Daemon == 0 {
		t.Fatal("the vassal started no daemon")
	}
	// Born in its cgroup: the vassal, and the daemon it double-forked.
	v2 := cgroupLine(r.Cgroup, "")
	mem := cgroupLine(r.Cgroup, "memory")
	if !strings.Contains(v2, "vassal-tree.ini-") || !strings.Contains(mem, "vassal-tree.ini-") {
		t.Fatalf("vassal cgroups: v2 %q memory %q\n%s", v2, mem, r.Cgroup)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", r.Daemon))
	if cgroupLine(string(b), "") != v2 {
		t.Errorf("daemon's cgroup %q, want the vassal's %q", cgroupLine(string(b), ""), v2)
	}
	memDir := filepath.Join("/sys/fs/cgroup/memory", mem)
	if lim, _ := os.ReadFile(filepath.Join(memDir, "memory.limit_in_bytes")); strings.TrimSpace(string(lim)) != strconv.Itoa(96<<20) {
		t.Errorf("memory.limit_in_bytes = %q, want %d", lim, 96<<20)
	}
	if pids, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", cgroupLine(r.Cgroup, "pids"), "pids.max")); strings.TrimSpace(string(pids)) != "64" {
		t.Errorf("pids.max = %q, want 64", pids)
	}
	// Stats show the usage.
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Vassals) != 1 || s.Vassals[0].Cgroup == nil || s.Vassals[0].Cgroup.Memory == 0 || s.Vassals[0].Cgroup.Pids < 2 {
		t.Errorf("stats cgroup usage: %+v", s.Vassals[0].Cgroup)
	}
	metrics, err := emperortest.Body("http://" + addr + "/metrics")
	if err != nil || !strings.Contains(metrics, `emperor_vassal_memory_bytes{vassal="tree.ini"`) || !strings.Contains(metrics, `emperor_vassal_tasks{vassal="tree.ini"`) {
		t.Errorf("metrics lack the cgroup usage (err %v):\n%s", err, metrics)
	}

	// The vassal stops: its daemon dies with it and the cgroups go away.
	os.Remove(filepath.Join(vassals, "tree.ini"))
	h.WaitState("tree.ini", emperor.Absent)
	emperortest.WaitExit(t, run.Pid, "vassal")
	emperortest.WaitExit(t, r.Daemon, "double-forked daemon")
	// The Emperor is buried only once every cgroup it removes is gone.
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join("/sys/fs/cgroup/unified", v2), memDir} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("cgroup %s not removed (%v)", dir, err)
		}
	}
}

func TestMemoryLimitKillsAndIsReported(t *testing.T) {
	h, vassals, report, reports := isoSetup(t, func(o *emperor.Options) {
		o.CgroupLimits = cgroup.Limits{Memory: 32 << 20}
		o.Throttle = time.Hour // one death is enough
	})
	writeFile(t, filepath.Join(vassals, "hog.ini"), isoConfig(report, "hog", "alloc = 256"))
	reports.wait(t, "hog")
	n := h.WaitNote("hog dies of its memory limit", emperortest.IsDeath("hog.ini"))
	if !strings.Contains(n.Reason, "oom") || !strings.Contains(n.Reason, "32M") {
		t.Errorf("death reason %q does not report the OOM kill and the limit", n.Reason)
	}
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Vassals) != 1 || !strings.Contains(s.Vassals[0].LastExit, "oom") || s.Counters.Restarts["oom"] < 1 {
		t.Errorf("stats: last_exit %q, restarts %v", s.Vassals[0].LastExit, s.Counters.Restarts)
	}
}

// A vassal may lower its limits in an [emperor] section, never raise them.
func TestSectionLimits(t *testing.T) {
	l, err := emperor.SectionLimits([]byte("[uwsgi]\ncgroup-memory = 1G\n[emperor]\ncgroup-memory = 64M\ncgroup-pids = 10\nother = x\n"))
	if err != nil || l != (cgroup.Limits{Memory: 64 << 20, Pids: 10}) {
		t.Errorf("SectionLimits = %+v, %v", l, err)
	}
	if _, err := emperor.SectionLimits([]byte("[emperor]\n\ncgroup-memory = lots\n")); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("bad value: %v", err)
	}
}

func FuzzSectionLimits(f *testing.F) {
	f.Add([]byte("[emperor]\ncgroup-memory = 64M\ncgroup-cpu-quota = 50%\n"))
	f.Add([]byte("[uwsgi]\nsocket = :3031\n[emperor]\ncgroup-pids=5\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		emperor.SectionLimits(text)
	})
}

const capNetBindService = "0000000000000400"

func TestCapabilitiesKeepOnlyTheGranted(t *testing.T) {
	h, vassals, report, reports := isoSetup(t, func(o *emperor.Options) {
		o.LimitCaps, o.Caps = true, 1<<10 // net_bind_service
	})
	writeFile(t, filepath.Join(vassals, "rootcap.ini"), isoConfig(report, "rootcap", ""))
	r := reports.wait(t, "rootcap")
	h.WaitState("rootcap.ini", emperor.Running)
	if r.UID != 0 || r.CapEff != capNetBindService || r.CapBnd != capNetBindService || r.CapPrm != capNetBindService {
		t.Errorf("root vassal: uid %d CapEff %s CapPrm %s CapBnd %s; want only net_bind_service (%s)", r.UID, r.CapEff, r.CapPrm, r.CapBnd, capNetBindService)
	}
	if r.Chown == "" {
		t.Error("a root vassal without CAP_CHOWN chowned a file to another user")
	}
}

func TestTyrantVassalKeepsGrantedCapsAndCannotBecomeRoot(t *testing.T) {
	h, vassals, report, reports := isoSetup(t, func(o *emperor.Options) {
		o.Tyrant = true
		o.LimitCaps, o.Caps = true, 1<<10
	})
	// Another tenant's private file.
	private := filepath.Join(filepath.Dir(vassals), "other-tenant")
	os.Mkdir(private, 0o700)
	secret := filepath.Join(private, "secret")
	writeFile(t, secret, "not yours")
	os.Chown(private, 65533, 65533)
	os.Chown(secret, 65533, 65533)
	path := filepath.Join(vassals, "tenant.ini")
	writeFile(t, path, isoConfig(report, "tenant", "read = "+secret))
	os.Chown(path, 65534, 65534)
	r := reports.wait(t, "tenant")
	if r.Read == "" {
		t.Errorf("tenant 65534 read tenant 65533's private file")
	}
	h.WaitState("tenant.ini", emperor.Running)
	if r.UID != 65534 || r.GID != 65534 {
		t.Errorf("tenant runs as %d:%d, want 65534:65534", r.UID, r.GID)
	}
	if r.CapEff != capNetBindService || r.CapAmb != capNetBindService || r.CapBnd != capNetBindService {
		t.Errorf("tenant caps: eff %s amb %s bnd %s; want net_bind_service only", r.CapEff, r.CapAmb, r.CapBnd)
	}
	if r.Setuid0 == "" {
		t.Error("the tenant's vassal became root")
	}
}

func TestNamespacesIsolateTenants(t *testing.T) {
	ns, err := namespaces.Parse("fs,net,ipc,pid,uts")
	if err != nil {
		t.Fatal(err)
	}
	h, vassals, report, reports := isoSetup(t, func(o *emperor.Options) { o.Namespaces = ns })
	mnt := filepath.Join(filepath.Dir(vassals), "mnt")
	os.Mkdir(mnt, 0o755)
	writeFile(t, filepath.Join(vassals, "alpha.ini"), isoConfig(report, "alpha", "mount-tmpfs = "+mnt+"\ndaemon = 1"))
	writeFile(t, filepath.Join(vassals, "beta.ini"), isoConfig(report, "beta", ""))
	a, b := reports.wait(t, "alpha"), reports.wait(t, "beta")
	runA := h.WaitState("alpha.ini", emperor.Running)
	// The init stage's pipes do not leak into the vassal (STYLE rule 8).
	if !slices.Equal(a.Fds, []int{0, 1, 2, 3}) {
		t.Errorf("vassal started through the init stage inherited fds %v, want 0-3", a.Fds)
	}
	if a.Pid != 1 || b.Pid != 1 {
		t.Errorf("vassals see themselves as pids %d and %d, want 1", a.Pid, b.Pid)
	}
	// alpha sees itself, its daemon's shell maybe, the daemon: never beta.
	if a.Procs > 3 || b.Procs > 2 {
		t.Errorf("vassals see %d and %d processes in /proc: another tenant's or the host's", a.Procs, b.Procs)
	}
	if a.Hostname != "alpha" || b.Hostname != "beta" {
		t.Errorf("hostnames %q and %q, want alpha and beta", a.Hostname, b.Hostname)
	}
	host, _ := os.Hostname()
	if host == "alpha" || host == "beta" {
		t.Errorf("the host's hostname changed to %q", host)
	}
	if !slices.Equal(a.Links, []string{"lo"}) {
		t.Errorf("alpha sees network links %v, want only lo", a.Links)
	}
	if a.Loopback != "" {
		t.Errorf("alpha cannot reach itself on 127.0.0.1 in its network namespace: %s", a.Loopback)
	}
	if a.Mounted != "" {
		t.Fatalf("alpha could not mount a tmpfs in its own mount namespace: %s", a.Mounted)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), " "+mnt+" ") {
		t.Errorf("alpha's mount on %s propagated to the host", mnt)
	}
	// Killing PID 1 ends everything in the namespace: the stop takes the
	// daemon with it, even without a cgroup.
	pidns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", runA.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(inPidNamespace(pidns)); n < 2 {
		t.Fatalf("%d processes in alpha's pid namespace, want the vassal and its daemon", n)
	}
	os.Remove(filepath.Join(vassals, "alpha.ini"))
	h.WaitState("alpha.ini", emperor.Absent)
	// Once PID 1 is gone the kernel kills the rest, which cannot fork.
	for _, pid := range inPidNamespace(pidns) {
		emperortest.WaitExit(t, pid, "a process of the stopped vassal's pid namespace")
	}
}

// inPidNamespace lists the live processes in the pid namespace ns (a
// /proc/PID/ns/pid link).
func inPidNamespace(ns string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); l == ns && !gone(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func TestUserNamespaceMapsTheTenantToRoot(t *testing.T) {
	ns, err := namespaces.Parse("user,pid,fs,uts")
	if err != nil {
		t.Fatal(err)
	}
	h, vassals, report, reports := isoSetup(t, func(o *emperor.Options) {
		o.Namespaces = ns
		o.Tyrant = true
	})
	path := filepath.Join(vassals, "userns.ini")
	writeFile(t, path, isoConfig(report, "userns", ""))
	os.Chown(path, 65534, 65534)
	r := reports.wait(t, "userns")
	run := h.WaitState("userns.ini", emperor.Running)
	if r.UID != 0 || r.Pid != 1 || r.Hostname != "userns" {
		t.Errorf("inside: uid %d pid %d hostname %q; want root, pid 1, userns", r.UID, r.Pid, r.Hostname)
	}
	m, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", run.Pid))
	if f := strings.Fields(string(m)); len(f) != 3 || f[0] != "0" || f[1] != "65534" || f[2] != "1" {
		t.Errorf("uid_map %q, want 0 65534 1", m)
	}
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", run.Pid))
	if !strings.Contains(string(st), "\nUid:\t65534\t") {
		t.Errorf("outside, the vassal is not uid 65534:\n%s", st)
	}
}

func TestTyrantGroups(t *testing.T) {
	h, vassals, report, reports := isoSetup(t, func(o *emperor.Options) {
		o.Tyrant, o.TyrantInitgroups = true, true
	})
	// 65533 has no passwd entry: its only group is its gid.
	path := filepath.Join(vassals, "nopasswd.ini")
	writeFile(t, path, isoConfig(report, "nopasswd", ""))
	os.Chown(path, 65533, 65532)
	r := reports.wait(t, "nopasswd")
	h.WaitState("nopasswd.ini", emperor.Running)
	if r.UID != 65533 || r.GID != 65532 || !slices.Equal(r.Groups, []int{65532}) {
		t.Errorf("uid %d gid %d groups %v; want 65533, 65532, [65532]", r.UID, r.GID, r.Groups)
	}
}

// Under emperor-nofollow the owner of the symlink decides: pointing it at
// another tenant's config does not make the vassal run as that tenant.
func TestTyrantNofollowSymlinkSwap(t *testing.T) {
	pub, binary, vassals, report, reports := tenantDirs(t)
	h := startEmperor(t, setup{dirs: []string{vassals}, mopts: monitor.Options{NoFollow: true}, reportDir: pub,
		role: roleIsolation, binary: binary, opts: func(o *emperor.Options) { o.Tyrant, o.TyrantNoFollow = true, true }})
	mine, theirs := filepath.Join(pub, "mine.ini"), filepath.Join(pub, "theirs.ini")
	writeFile(t, mine, isoConfig(report, "linked", ""))
	writeFile(t, theirs, isoConfig(report, "linked", ""))
	os.Chown(mine, 65534, 65534)
	os.Chown(theirs, 65533, 65533)
	link := filepath.Join(vassals, "linked.ini")
	symlink(t, mine, link, 65534) // tyrant_test.go
	r := reports.wait(t, "linked")
	h.WaitState("linked.ini", emperor.Running)
	if r.UID != 65534 {
		t.Fatalf("runs as %d, want the link's owner 65534", r.UID)
	}
	// Swap the link's target for the other tenant's config.
	tmp := link + ".new"
	os.Symlink(theirs, tmp)
	os.Lchown(tmp, 65534, 65534)
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	// The link's owner does not own the file it now points to: running it
	// as the link's owner would hand them another tenant's text, so the
	// vassal is stopped and refused until the link changes again.
	n := h.WaitState("linked.ini", emperor.Disabled)
	if !strings.Contains(n.Reason, "symlink's owner") {
		t.Errorf("refusal %q does not name the symlink's owner", n.Reason)
	}
	emperortest.WaitExit(t, r.Pid, "the vassal of the swapped link")
	for _, x := range reports.All() {
		if x.UID != 65534 {
			t.Errorf("a vassal ran as uid %d after the swap", x.UID)
		}
	}
}

func TestHooks(t *testing.T) {
	ns, err := namespaces.Parse("uts,fs")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	envFile, fdFile, inside := filepath.Join(out, "env"), filepath.Join(out, "fds"), filepath.Join(out, "inside")
	h, vassals, report, reports := isoSetup(t, func(o *emperor.Options) {
		o.Namespaces = ns
		o.ExecAsEmperor = []string{
			"env | grep ^UWSGI_VASSAL_ | sort > " + envFile,
			"ls /proc/self/fd > " + fdFile,
		}
		o.ExecAsVassal = []string{"hostname > " + inside}
	})
	path := filepath.Join(vassals, "hooked.ini")
	writeFile(t, path, isoConfig(report, "hooked", "hook-file = "+inside))
	r := reports.wait(t, "hooked")
	run := h.WaitState("hooked.ini", emperor.Running)
	if r.Hook != "hooked" {
		t.Errorf("exec-as-vassal saw hostname %q, want the vassal's own namespace (hooked)", r.Hook)
	}
	h.WaitNote("second exec-as-emperor hook done", func(n emperor.Note) bool {
		return strings.HasPrefix(n.Reason, "exec-as-emperor \"ls")
	})
	env, _ := os.ReadFile(envFile)
	want := fmt.Sprintf("UWSGI_VASSAL_CONFIG=%s\nUWSGI_VASSAL_GID=0\nUWSGI_VASSAL_PID=%d\nUWSGI_VASSAL_UID=0\n", path, run.Pid)
	if string(env) != want {
		t.Errorf("exec-as-emperor environment:\n%s\nwant:\n%s", env, want)
	}
	fds, _ := os.ReadFile(fdFile)
	if got := strings.Fields(string(fds)); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Errorf("exec-as-emperor hook has fds %v, want 0-2 and ls's own", got)
	}
}

// Paranoid tyrant mode: the Emperor itself runs as nobody, holding only
// CAP_SETUID and CAP_SETGID (as ambient capabilities, the way a launcher
// or systemd's AmbientCapabilities= grants them), and still runs each
// vassal as its config's owner, without passing its capabilities on.
func TestParanoidTyrant(t *testing.T) {
	pub, binary, vassals, report, reports := tenantDirs(t)
	tenant := filepath.Join(vassals, "tenant.ini")
	writeFile(t, tenant, isoConfig(report, "tenant", ""))
	os.Chown(tenant, 65533, 65533)
	writeFile(t, filepath.Join(vassals, "rooted.ini"), isoConfig(report, "rooted", ""))

	log := &testkit.Log{}
	cmd := exec.Command(binary, vassals)
	cmd.Dir = pub
	cmd.Env = emperortest.RoleEnviron(roleTyrantEmperor)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}},
		AmbientCaps: []uintptr{unix.CAP_SETUID, unix.CAP_SETGID},
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("emperor log:\n%s", log)
		}
	}()
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if !strings.Contains(string(st), "\nUid:\t65534\t") || !strings.Contains(string(st), "\nCapEff:\t00000000000000c0\n") {
		t.Fatalf("the Emperor is not nobody with only setuid and setgid:\n%s", st)
	}

	r := reports.wait(t, "tenant")
	if r.UID != 65533 || r.GID != 65533 || !slices.Equal(r.Groups, []int{65533}) {
		t.Errorf("tenant vassal runs as uid %d gid %d groups %v, want 65533, 65533, [65533]", r.UID, r.GID, r.Groups)
	}
	if r.CapEff != "0000000000000000" || r.CapPrm != "0000000000000000" || r.CapAmb != "0000000000000000" {
		t.Errorf("the vassal inherited capabilities: eff %s prm %s amb %s", r.CapEff, r.CapPrm, r.CapAmb)
	}
	if r.Setuid0 == "" {
		t.Error("the tenant's vassal became root")
	}
	log.WaitFor(t, "rooted.ini", "refusing to run as uid 0")
}

// A real uWSGI vassal runs in every namespace but net (the test must reach
// its port), as the tenant owning its config, root only inside its user
// namespace, in a cgroup with a memory limit.
func TestRealUWSGIVassalIsolated(t *testing.T) {
	uwsgi := testenv.UWSGI(t)
	testenv.Root(t)
	pub, _ := publicDir(t)
	dir := filepath.Join(pub, "vassals")
	os.Mkdir(dir, 0o755)
	port := testenv.FreePort(t)
	writeFile(t, filepath.Join(dir, "app.py"), wsgiApp)
	ns, err := namespaces.Parse("fs,pid,uts,ipc,user")
	if err != nil {
		t.Fatal(err)
	}
	h := startEmperor(t, setup{dirs: []string{dir}, reportDir: pub, opts: func(o *emperor.Options) {
		o.Binary = uwsgi
		o.Env = os.Environ()
		o.Namespaces = ns
		o.Tyrant = true
		o.CgroupLimits = cgroup.Limits{Memory: 256 << 20}
	}})
	ini := filepath.Join(dir, "py.ini")
	writeFile(t, ini, fmt.Sprintf("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:%d\nwsgi-file = app.py\nmaster = true\nprocesses = 1\n", port))
	os.Chown(ini, 65534, 65534)
	run := h.WaitState("py.ini", emperor.Running)
	h.WaitNote("byte 5 (accepting)", func(n emperor.Note) bool { return n.IsByte && n.Byte == byte(protocol.Accepting) })
	emperortest.WaitServing(t, fmt.Sprintf("http://127.0.0.1:%d/", port), func(b string) bool { return strings.HasPrefix(b, "worker ") })
	for _, kind := range []string{"pid", "uts", "ipc", "mnt", "user"} {
		mine, _ := os.Readlink("/proc/self/ns/" + kind)
		its, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", run.Pid, kind))
		if its == "" || its == mine {
			t.Errorf("uWSGI vassal shares the Emperor's %s namespace", kind)
		}
	}
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", run.Pid))
	if !strings.Contains(string(st), "\nUid:\t65534\t") || !strings.Contains(string(st), "\nNSpid:\t") || !strings.HasSuffix(strings.Fields(grepLine(string(st), "NSpid:"))[2], "1") {
		t.Errorf("uWSGI master is not uid 65534 and pid 1 of its namespace:\n%s", st)
	}
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", run.Pid))
	if !strings.Contains(cgroupLine(string(cg), "memory"), "vassal-py.ini-") {
		t.Errorf("uWSGI master not in its cgroup:\n%s", cg)
	}
	os.Remove(ini)
	h.WaitState("py.ini", emperor.Absent)
	emperortest.WaitExit(t, run.Pid, "uWSGI master")
}

func grepLine(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return prefix + " ? ?"
}

// A tenant's vassal cannot move itself out of its cgroup, and when it dies
// on its own the daemon it double-forked dies with it.
func TestTenantCannotEscapeItsCgroupAndLeavesNothingBehind(t *testing.T) {
	h, vassals, report, reports := isoSetup(t, func(o *emperor.Options) {
		o.Tyrant, o.Cgroup = true, true
		o.Throttle = time.Hour
	})
	path := filepath.Join(vassals, "careless.ini")
	writeFile(t, path, isoConfig(report, "careless", "escape = 1\ndaemon = 1\nexit = 1"))
	os.Chown(path, 65534, 65534)
	r := reports.wait(t, "careless")
	if r.UID != 65534 || r.Daemon == 0 {
		t.Fatalf("uid %d daemon %d", r.UID, r.Daemon)
	}
	if r.Escape == "" || strings.HasPrefix(r.Escape, ";") || strings.Contains(r.Escape, "; ;") || strings.HasSuffix(r.Escape, "; ") {
		t.Errorf("the tenant moved itself out of its cgroup (errors: %q)", r.Escape)
	}
	if !strings.Contains(cgroupLine(r.Cgroup, ""), "vassal-careless.ini-") {
		t.Errorf("after trying to escape it is in %q", cgroupLine(r.Cgroup, ""))
	}
	h.WaitNote("careless exits on its own", func(n emperor.Note) bool {
		return n.Key.Name == "careless.ini" && n.To == emperor.Waiting && strings.Contains(n.Reason, "exit status 3")
	})
	emperortest.WaitExit(t, r.Daemon, "the daemon of a vassal that exited")
}

// BenchmarkSpawnIsolated measures config-to-running (the spawn, done when
// the process runs: past the init stage's exec where there is one) for a
// plain vassal and with each isolation feature.
func BenchmarkSpawnIsolated(b *testing.B) {
	ns, _ := namespaces.Parse("fs,ipc,pid,uts")
	for _, bc := range []struct {
		name string
		opts func(*emperor.Options)
	}{
		{"plain", func(*emperor.Options) {}},
		{"cgroup", func(o *emperor.Options) { o.Cgroup = true }},
		{"cgroup-v1-limit", func(o *emperor.Options) { o.CgroupLimits = cgroup.Limits{Memory: 256 << 20} }},
		{"caps-init-stage", func(o *emperor.Options) { o.LimitCaps, o.Caps = true, 1<<10 }},
		{"namespaces", func(o *emperor.Options) { o.Namespaces = ns }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			testenv.Root(b)
			dir := b.TempDir()
			e := emperortest.Start(b, emperortest.Setup{Monitors: []string{dir}, MonitorOptions: monitor.Options{Freq: time.Minute},
				Role: roleIsolation, Options: func(o *emperor.Options) {
					o.MaxStarting = -1
					bc.opts(o)
				}})
			notes := e.Notes.From()
			await := func(name string, to emperor.State) {
				notes.Until(b, name+" "+to.String(), emperortest.IsState(name, to))
			}
			for i := 0; b.Loop(); i++ {
				name := fmt.Sprintf("v%d.ini", i)
				os.WriteFile(filepath.Join(dir, name), []byte("[uwsgi]\nname = x\n"), 0o644)
				await(name, emperor.Running)
				b.StopTimer()
				os.Remove(filepath.Join(dir, name))
				await(name, emperor.Absent)
				b.StartTimer()
			}
		})
	}
}

// A database-like monitor supplies the owner with an inline config: the
// vassal runs as that owner (root refused), in a cgroup whose limit the
// config's [emperor] section lowers, and its CPU limits are written.
func TestTyrantOwnerAndLimitsFromTheMonitor(t *testing.T) {
	_, binary, _, report, reports := tenantDirs(t)
	fake := monitortest.New("db")
	h := startEmperor(t, setup{monitors: []monitor.Monitor{fake}, role: roleIsolation, binary: binary, opts: func(o *emperor.Options) {
		o.Tyrant = true
		o.CgroupLimits = cgroup.Limits{Memory: 256 << 20, CPUWeight: 200, CPUQuota: 50}
	}})
	row := func(name string, uid uint32, extra string) monitor.Event {
		return monitor.Event{Op: monitor.Touch, Key: monitor.Key{Name: name}, Version: monitor.Version{Hash: "1"},
			Config: []byte(isoConfig(report, strings.TrimSuffix(name, ".ini"), "") + extra), Owner: &monitor.Owner{UID: uid, GID: uid}}
	}
	fake.Events <- row("row.ini", 65534, "[emperor]\ncgroup-memory = 48M\ncgroup-cpu-quota = 400%\n")
	fake.Events <- row("rootrow.ini", 0, "")
	r := reports.wait(t, "row")
	if r.UID != 65534 || r.GID != 65534 {
		t.Errorf("row runs as %d:%d, want the owner the monitor gave, 65534", r.UID, r.GID)
	}
	if n := h.WaitState("rootrow.ini", emperor.Disabled); !strings.Contains(n.Reason, "root") {
		t.Errorf("root row refused with %q", n.Reason)
	}
	read := func(ctrl, file string) string {
		b, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, cgroupLine(r.Cgroup, ctrl), file))
		return strings.TrimSpace(string(b))
	}
	if got := read("memory", "memory.limit_in_bytes"); got != strconv.Itoa(48<<20) {
		t.Errorf("memory limit %s, want the row's lower 48M", got)
	}
	// The row asked for 400% CPU: it keeps the Emperor's 50%.
	if got := read("cpu", "cpu.cfs_quota_us"); got != "50000" {
		t.Errorf("cpu.cfs_quota_us = %s, want 50000", got)
	}
	if got := read("cpu", "cpu.shares"); got != "2048" {
		t.Errorf("cpu.shares = %s, want 2048 (weight 200)", got)
	}
}

// A real uWSGI vassal in its own network namespace binds its loopback
// socket and accepts: lo is up there.
func TestRealUWSGIVassalInItsOwnNetwork(t *testing.T) {
	uwsgi := testenv.UWSGI(t)
	testenv.Root(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.py"), wsgiApp)
	ns, err := namespaces.Parse("net,fs,pid")
	if err != nil {
		t.Fatal(err)
	}
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Binary, o.Env, o.Namespaces = uwsgi, os.Environ(), ns
	}})
	writeFile(t, filepath.Join(dir, "net.ini"), "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:8080\nwsgi-file = app.py\nmaster = true\nprocesses = 1\n")
	run := h.WaitState("net.ini", emperor.Running)
	h.WaitNote("byte 5 (accepting)", func(n emperor.Note) bool { return n.IsByte && n.Byte == byte(protocol.Accepting) })
	mine, _ := os.Readlink("/proc/self/ns/net")
	if its, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", run.Pid)); its == "" || its == mine {
		t.Errorf("uWSGI vassal shares the Emperor's network namespace")
	}
}
