package emperor_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// TestVassalsStartAndStopHooks: vassals-start-hook runs as PROGRAM NAME
// inside each vassal's process before its exec (under the init stage's
// shell, whose parent is the pid the vassal then has), a failing one does not stop the vassal;
// vassals-stop-hook runs after each death, a config's removal and
// Ragnarok's too, before Run returns. Both see UWSGI_VASSALS_DIR.
func TestVassalsStartAndStopHooks(t *testing.T) {
	dir := t.TempDir()
	bin := t.TempDir()
	out := filepath.Join(t.TempDir(), "hooks.out")
	// It says its shell's parent: the init stage that becomes the vassal.
	script := "#!/bin/sh\necho \"$(basename \"$0\") $1 $UWSGI_VASSALS_DIR $(cut -d' ' -f4 /proc/$PPID/stat)\" >> " + out +
		"\n[ \"$1\" = bad.ini ] && exit 3\nexit 0\n"
	start, stop := filepath.Join(bin, "start"), filepath.Join(bin, "stop")
	for _, p := range []string{start, stop} {
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.VassalsStartHook, o.VassalsStopHook = start, stop
	}})
	writeFile(t, filepath.Join(dir, "good.ini"), h.vassalConfig("name = good"))
	good := h.WaitState("good.ini", emperor.Running)
	waitLines(t, out, "start good.ini "+dir+" "+strconv.Itoa(good.Pid))

	writeFile(t, filepath.Join(dir, "bad.ini"), h.vassalConfig("name = bad"))
	h.WaitState("bad.ini", emperor.Running)
	waitLines(t, out, "start bad.ini "+dir)

	os.Remove(filepath.Join(dir, "good.ini"))
	h.WaitState("good.ini", emperor.Absent)
	waitLines(t, out, "stop good.ini "+dir)
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "stop bad.ini "+dir) {
		t.Errorf("Run returned before the stop hook of Ragnarok's vassal ran:\n%s", b)
	}
	if n := strings.Count(string(b), "stop good.ini"); n != 1 {
		t.Errorf("good.ini's stop hook ran %d times, want once:\n%s", n, b)
	}
}

// waitLines waits until a line of the file at path starts with prefix.
func waitLines(t *testing.T, path, prefix string) {
	t.Helper()
	deadline := time.Now().Add(testkit.Deadline)
	for {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, prefix) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line %q in %s:\n%s", prefix, path, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
