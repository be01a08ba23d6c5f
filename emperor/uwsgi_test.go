package emperor_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/protocol"
)

// requireUWSGI returns the path of a real uWSGI with the python3 plugin. Off
// CI a missing uWSGI skips the test; under CI=true it fails it.
func requireUWSGI(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("uwsgi")
	if err == nil {
		if _, err = os.Stat("/usr/lib/uwsgi/plugins/python3_plugin.so"); err == nil {
			return path
		}
	}
	msg := "real uWSGI not installed (apt-get install uwsgi-core uwsgi-plugin-python3, or make test): " + err.Error()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

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
	uwsgi := requireUWSGI(t)
	dir := t.TempDir()
	port := freePort(t)
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
