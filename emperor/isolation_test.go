package emperor_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/namespaces"
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
	n := h.waitState("rooted.ini", emperor.Disabled)
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
	h.waitState("tenant.ini", emperor.Disabled)
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
	run := h.waitState("ns.ini", emperor.Running)
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
