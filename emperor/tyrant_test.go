package emperor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
)

// tenantConfig writes a config owned by uid in a directory of its own
// under pub, and returns the directory.
func tenantConfig(t *testing.T, h *harness, pub, tenant string, uid int, extra string) string {
	t.Helper()
	dir := filepath.Join(pub, tenant)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.ini")
	writeFile(t, path, h.vassalConfig("name = app\ntenant = "+tenant+"\n"+extra))
	for _, p := range []string{dir, path} {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tyrantEmperor runs a tyrant-mode Emperor on a public directory's vassals
// directory, with the test binary copied where every tenant can run it.
func tyrantEmperor(t *testing.T, opts func(*emperor.Options)) (h *harness, pub, vassals string) {
	t.Helper()
	testenv.Root(t)
	pub, binary := publicDir(t)
	vassals = filepath.Join(pub, "vassals")
	os.Mkdir(vassals, 0o755)
	h = startEmperor(t, setup{dirs: []string{vassals}, reportDir: pub, opts: func(o *emperor.Options) {
		o.Tyrant, o.Binary = true, binary
		if opts != nil {
			opts(o)
		}
	}})
	return h, pub, vassals
}

// symlink makes link, owned by uid, appear at once: made and given to uid
// under a name the monitor ignores, then renamed into place. Made in
// place, it is root's until the chown, and an Emperor quick enough runs
// it as a link root made.
func symlink(t *testing.T, target, link string, uid int) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp")
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(tmp, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// Tenant A links tenant B's config into the watched directory: uWSGI runs
// it as B in A's directory, so B's relative paths reach A's files. Ours
// refuses a link made by anyone but root or the config's owner, and a link
// root made runs as B, in B's directory, with the text of the file it
// opened.
func TestTyrantRefusesAnotherTenantsConfigLinkedIn(t *testing.T) {
	h, pub, vassals := tyrantEmperor(t, nil)
	const a, b = 65534, 65533
	bDir := tenantConfig(t, h, pub, "b", b, "")
	symlink(t, filepath.Join(bDir, "app.ini"), filepath.Join(vassals, "stolen.ini"), a)
	n := h.WaitState("stolen.ini", emperor.Disabled)
	if !strings.Contains(n.Reason, "symlink") {
		t.Errorf("refusal %q does not name the symlink", n.Reason)
	}

	symlink(t, filepath.Join(bDir, "app.ini"), filepath.Join(vassals, "granted.ini"), 0)
	r := h.waitReport("the root-linked config runs", func(r report) bool { return r.Event == "start" })
	if r.UID != b || r.Cwd != bDir || !strings.Contains(r.Config, "tenant = b") {
		t.Errorf("root's link runs as uid %d in %s with config %q; want uid %d in %s with B's text", r.UID, r.Cwd, r.Config, b, bDir)
	}
	for _, x := range h.reports.All() {
		if x.Event == "start" && x.Pid != r.Pid {
			t.Errorf("another vassal started: %+v", x)
		}
	}
}

// Flipping a directory symlink on the way to the config while its vassal
// respawns (uWSGI's TOCTOU, reference B34) never pairs one tenant's
// credential with another's config or directory: what the vassal runs as,
// reads and runs in come from one open file.
func TestTyrantConfigFlippedMidSpawnStaysConsistent(t *testing.T) {
	h, pub, vassals := tyrantEmperor(t, func(o *emperor.Options) {
		o.Throttle, o.MaxThrottle = time.Millisecond, time.Millisecond
		o.ThrottleBurst = -1
	})
	const a, b = 65534, 65533
	dirs := map[int]string{
		a: tenantConfig(t, h, pub, "a", a, "crash-after = 20ms"),
		b: tenantConfig(t, h, pub, "b", b, "crash-after = 20ms"),
	}
	cur := filepath.Join(pub, "cur")
	symlink(t, dirs[a], cur, a)
	symlink(t, filepath.Join(cur, "app.ini"), filepath.Join(vassals, "app.ini"), 0)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // tenant A flips its link between its directory and B's
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tmp := cur + ".new"
			os.Symlink(dirs[[]int{a, b}[i%2]], tmp)
			os.Lchown(tmp, a, a)
			os.Rename(tmp, cur)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	seen := map[int]int{}
	for starts := h.reports.From(); seen[a]+seen[b] < 12; {
		r := starts.Until(t, "a vassal start", func(r report) bool { return r.Event == "start" })
		want := map[int]string{a: "tenant = a", b: "tenant = b"}[r.UID]
		if want == "" || !strings.Contains(r.Config, want) || r.Cwd != dirs[r.UID] {
			t.Fatalf("vassal runs as uid %d in %s with config %q: credential, directory and text disagree", r.UID, r.Cwd, r.Config)
		}
		seen[r.UID]++
	}
	t.Logf("starts as A: %d, as B: %d", seen[a], seen[b])
}

// A config removed while its spawn is on the spawner thread, which then
// finds the file gone, leaves the table: it was never refused for good
// (found by make faults: such vassals stayed listed, disabled, forever).
// The monitor says touch then destroy at once, so the destroy usually
// arrives while the spawn is under way; either order must end absent.
func TestTyrantConfigRemovedWhileSpawningLeaves(t *testing.T) {
	testenv.Root(t)
	fake := monitortest.New("files")
	h := startEmperor(t, setup{monitors: []monitor.Monitor{fake}, opts: func(o *emperor.Options) {
		o.Tyrant = true
	}})
	dir := t.TempDir()
	for i := range 20 {
		name := fmt.Sprintf("gone-%d.ini", i)
		key := monitor.Key{Name: name}
		fake.Events <- monitor.Event{Op: monitor.Touch, Key: key, Path: filepath.Join(dir, name), Version: monitor.Version{Hash: "1"}}
		fake.Events <- monitor.Event{Op: monitor.Destroy, Key: key}
	}
	for i := range 20 {
		h.WaitState(fmt.Sprintf("gone-%d.ini", i), emperor.Absent)
	}
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range s.Vassals {
		t.Errorf("%s still listed (%+v) after its config was removed", v.ID, v)
	}
}
