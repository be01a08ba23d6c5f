package emperor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/emperortest"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/protocol"
)

const wsgiApp = `import os
def application(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [("worker %d\n" % os.getpid()).encode()]
`

func TestRealUWSGIVassal(t *testing.T) {
	uwsgi := testenv.UWSGI(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	writeFile(t, filepath.Join(dir, "app.py"), wsgiApp)
	// The config is complete before the Emperor's first scan: written
	// during it, the scan may see it half-written, and the finished write
	// is then rightly a change: a reload byte that reaches uWSGI while it
	// starts. Seen once under load: after that, the test's touch reload
	// never brought byte 5.
	ini := filepath.Join(dir, "py.ini")
	conf := fmt.Sprintf("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:%d\nwsgi-file = app.py\nmaster = true\nprocesses = 1\n", port)
	writeFile(t, ini, conf)
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Binary = uwsgi
		o.Env = os.Environ() // a real vassal, not the test binary
	}})

	run := h.WaitState("py.ini", emperor.Running)
	byteSeen := func(b protocol.Byte) func(emperor.Note) bool {
		return func(n emperor.Note) bool { return n.IsByte && n.Byte == byte(b) && n.Key.Name == "py.ini" }
	}
	h.WaitNote("byte 1 (spawned)", byteSeen(protocol.Spawned))
	h.WaitNote("byte 5 (accepting)", byteSeen(protocol.Accepting))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	first := emperortest.WaitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "worker ") })
	h.WaitNote("byte 17 (loyal) after the first request", byteSeen(protocol.Loyal))

	// Touch: reload. The master keeps its pid, a new worker serves and
	// worker 1 announces itself with byte 5 again.
	touch := time.Now().Add(time.Second)
	if err := os.Chtimes(ini, touch, touch); err != nil {
		t.Fatal(err)
	}
	h.WaitNote("byte 5 after reload", byteSeen(protocol.Accepting))
	second := emperortest.WaitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "worker ") && b != first })
	if first == second {
		t.Errorf("still served by %q after reload", first)
	}
	if !alive(run.Pid) {
		t.Errorf("uWSGI master %d gone after a reload; it should re-exec in place", run.Pid)
	}

	// Removal: byte 0, the vassal exits, the Emperor forgets it.
	os.Remove(ini)
	h.WaitState("py.ini", emperor.Absent)
	if alive(run.Pid) {
		t.Errorf("uWSGI master %d still alive after its config was removed", run.Pid)
	}
	if _, err := emperortest.Body(url); err == nil {
		t.Errorf("%s still serves after removal", url)
	}
}

// TestFrozenUWSGIVassalIsReplaced freezes a real uWSGI vassal (master and
// worker, SIGSTOP to its process group) that sends heartbeats: the Emperor
// kills it and its worker and respawns it, and the new one serves.
func TestFrozenUWSGIVassalIsReplaced(t *testing.T) {
	uwsgi := testenv.UWSGI(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	writeFile(t, filepath.Join(dir, "app.py"), wsgiApp)
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Binary = uwsgi
		o.Env = os.Environ()
		o.RequiredHeartbeat = 3 * time.Second
	}})
	conf := fmt.Sprintf("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:%d\nwsgi-file = app.py\nmaster = true\nprocesses = 1\nheartbeat = 1\n", port)
	writeFile(t, filepath.Join(dir, "hb.ini"), conf)
	run := h.WaitState("hb.ini", emperor.Running)
	h.WaitNote("first heartbeat", func(n emperor.Note) bool { return n.IsByte && n.Byte == 26 })
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	first := emperortest.WaitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "worker ") })

	if err := syscall.Kill(-run.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	died := h.WaitNote("killed for its heartbeat", emperortest.IsDeath("hb.ini"))
	if !strings.Contains(died.Reason, "no heartbeat") {
		t.Errorf("death reason %q", died.Reason)
	}
	again := h.WaitState("hb.ini", emperor.Running)
	if again.Pid == run.Pid {
		t.Fatalf("not respawned: pid %d", again.Pid)
	}
	second := emperortest.WaitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "worker ") && b != first })
	t.Logf("frozen %s replaced by %s", strings.TrimSpace(first), strings.TrimSpace(second))
}
