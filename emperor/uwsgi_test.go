package emperor_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/protocol"
)

// get returns the body of GET url, or an error.
func get(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitServing polls url until its body satisfies ok.
func waitServing(t *testing.T, url string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		body, err := get(url)
		if err == nil && ok(body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served as expected: last body %q, err %v", url, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

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
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Binary = uwsgi
		o.Env = os.Environ() // a real vassal, not the test binary
	}})
	ini := filepath.Join(dir, "py.ini")
	conf := fmt.Sprintf("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:%d\nwsgi-file = app.py\nmaster = true\nprocesses = 1\n", port)
	writeFile(t, ini, conf)

	run := h.waitState("py.ini", emperor.Running)
	byteSeen := func(b protocol.Byte) func(emperor.Note) bool {
		return func(n emperor.Note) bool { return n.IsByte && n.Byte == byte(b) && n.Key.Name == "py.ini" }
	}
	h.waitNote("byte 1 (spawned)", byteSeen(protocol.Spawned))
	h.waitNote("byte 5 (accepting)", byteSeen(protocol.Accepting))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	first := waitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "worker ") })
	h.waitNote("byte 17 (loyal) after the first request", byteSeen(protocol.Loyal))

	// Touch: reload. The master keeps its pid, a new worker serves and
	// worker 1 announces itself with byte 5 again.
	touch := time.Now().Add(time.Second)
	if err := os.Chtimes(ini, touch, touch); err != nil {
		t.Fatal(err)
	}
	h.waitNote("byte 5 after reload", byteSeen(protocol.Accepting))
	second := waitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "worker ") && b != first })
	if first == second {
		t.Errorf("still served by %q after reload", first)
	}
	if !alive(run.Pid) {
		t.Errorf("uWSGI master %d gone after a reload; it should re-exec in place", run.Pid)
	}

	// Removal: byte 0, the vassal exits, the Emperor forgets it.
	os.Remove(ini)
	h.waitState("py.ini", emperor.Absent)
	if alive(run.Pid) {
		t.Errorf("uWSGI master %d still alive after its config was removed", run.Pid)
	}
	if _, err := get(url); err == nil {
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
	run := h.waitState("hb.ini", emperor.Running)
	h.waitNote("first heartbeat", func(n emperor.Note) bool { return n.IsByte && n.Byte == 26 })
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	first := waitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "worker ") })

	if err := syscall.Kill(-run.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	died := h.waitNote("killed for its heartbeat", func(n emperor.Note) bool {
		return n.Key.Name == "hb.ini" && n.To == emperor.Waiting && strings.HasPrefix(n.Reason, "died")
	})
	if !strings.Contains(died.Reason, "no heartbeat") {
		t.Errorf("death reason %q", died.Reason)
	}
	again := h.waitState("hb.ini", emperor.Running)
	if again.Pid == run.Pid {
		t.Fatalf("not respawned: pid %d", again.Pid)
	}
	second := waitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "worker ") && b != first })
	t.Logf("frozen %s replaced by %s", strings.TrimSpace(first), strings.TrimSpace(second))
}
