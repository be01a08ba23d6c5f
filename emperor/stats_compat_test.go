package emperor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// jsonKeys returns the keys of the JSON object raw, in their order, with
// each value.
func jsonKeys(t *testing.T, raw []byte) ([]string, map[string]json.RawMessage) {
	t.Helper()
	var vals map[string]json.RawMessage
	if err := json.Unmarshal(raw, &vals); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.Token() // {
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys, vals
}

// jsonKind is the JSON type of a value: number, string, array, object, ...
func jsonKind(v json.RawMessage) string {
	switch b := bytes.TrimSpace(v); {
	case len(b) == 0:
		return "none"
	case b[0] == '"':
		return "string"
	case b[0] == '[':
		return "array"
	case b[0] == '{':
		return "object"
	case b[0] == 't' || b[0] == 'f':
		return "bool"
	case b[0] == 'n':
		return "null"
	}
	return "number"
}

// sameSchema checks that ours begins with uWSGI's keys, in uWSGI's order,
// each holding a value of the same JSON type, and returns both objects'
// values.
func sameSchema(t *testing.T, what string, uwsgi, ours []byte) (map[string]json.RawMessage, map[string]json.RawMessage) {
	t.Helper()
	uk, uv := jsonKeys(t, uwsgi)
	ok, ov := jsonKeys(t, ours)
	if len(ok) < len(uk) {
		t.Errorf("%s: ours has keys %q, uWSGI's %q", what, ok, uk)
		return uv, ov
	}
	for i, k := range uk {
		if ok[i] != k {
			t.Errorf("%s: key %d is %q, uWSGI's is %q (ours %q, uWSGI's %q)", what, i, ok[i], k, ok, uk)
			break
		}
		if a, b := jsonKind(uv[k]), jsonKind(ov[k]); a != b {
			t.Errorf("%s: %q is a %s (%s), uWSGI's a %s (%s)", what, k, b, ov[k], a, uv[k])
		}
	}
	return uv, ov
}

// readAll connects to addr (host:port, a path or "@name") and reads to EOF.
func readAll(network, addr string) ([]byte, error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return io.ReadAll(c)
}

// emperorStatsDoc is what these tests read of either Emperor's stats, by
// uWSGI's names.
type emperorStatsDoc struct {
	Emperor []string `json:"emperor"`
	Vassals []struct {
		ID        string
		Accepting int
	} `json:"vassals"`
	Blacklist []struct {
		ID      string
		Attempt int
	} `json:"blacklist"`
}

// rawStats returns the raw objects of a vassal and of a blacklist entry in
// a stats document, nil for one that is not there.
func rawStats(t *testing.T, doc []byte, vassal, blacklisted string) (v, b json.RawMessage) {
	t.Helper()
	var s struct {
		Vassals, Blacklist []json.RawMessage
	}
	if err := json.Unmarshal(doc, &s); err != nil {
		t.Fatalf("stats are not JSON: %v\n%s", err, doc)
	}
	find := func(list []json.RawMessage, id string) json.RawMessage {
		for _, r := range list {
			var x struct{ ID string }
			json.Unmarshal(r, &x)
			if x.ID == id {
				return r
			}
		}
		return nil
	}
	return find(s.Vassals, vassal), find(s.Blacklist, blacklisted)
}

// startUWSGIEmperor runs `uwsgi --emperor dir --emperor-stats addr` until
// the test ends.
func startUWSGIEmperor(t *testing.T, uwsgi, dir, stats string) {
	t.Helper()
	cmd := exec.Command(uwsgi, "--emperor", dir, "--emperor-stats", stats, "--emperor-freq", "1")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT) // Ragnarok
		select {
		case <-done:
		case <-time.After(testkit.Deadline):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group we made
			<-done
		}
		if t.Failed() {
			t.Logf("uWSGI Emperor log:\n%s", log.String())
		}
	})
}

// A tool written for `uwsgi --emperor-stats` reads ours the same: the same
// configs run under a real uWSGI 2.0 Emperor and under ours, a healthy
// vassal and one that dies before it is loyal, give documents whose every
// uWSGI key is ours too, in uWSGI's order and of the same JSON type, with
// the same monitor names and the state a tool reads from them.
func TestStatsReadAsUWSGIsEmperorStats(t *testing.T) {
	uwsgi := testenv.UWSGI(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.py"), wsgiApp)
	writeFile(t, filepath.Join(dir, "good.ini"), "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:0\nwsgi-file = app.py\nmaster = true\nprocesses = 1\n")
	writeFile(t, filepath.Join(dir, "bad.ini"), "[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:0\nwsgi-file = missing.py\nneed-app = true\n")

	uwsgiAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	startUWSGIEmperor(t, uwsgi, dir, uwsgiAddr)
	oursAddr := filepath.Join(t.TempDir(), "stats.sock")
	startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Binary = uwsgi
		o.Env = os.Environ()
		o.Stats = oursAddr
		o.Throttle, o.MaxThrottle = 200*time.Millisecond, time.Second
	}})

	// Both documents once each Emperor runs good.ini accepting and has
	// blacklisted bad.ini after a second unloyal death.
	settled := func(network, addr string) []byte {
		var doc []byte
		var last error
		ok := waitUntil(func() bool {
			if doc, last = readAll(network, addr); last != nil {
				return false
			}
			var s emperorStatsDoc
			if last = json.Unmarshal(doc, &s); last != nil {
				return false
			}
			good, bad := false, false
			for _, v := range s.Vassals {
				good = good || v.ID == "good.ini" && v.Accepting == 1
			}
			for _, b := range s.Blacklist {
				bad = bad || b.ID == "bad.ini" && b.Attempt >= 1
			}
			return good && bad
		})
		if !ok {
			t.Fatalf("%s: good.ini accepting and bad.ini blacklisted twice never showed: %v\n%s", addr, last, doc)
		}
		return doc
	}
	theirs := settled("tcp", uwsgiAddr)
	ours := settled("unix", oursAddr)

	sameSchema(t, "emperor stats", theirs, ours)
	var u, o emperorStatsDoc
	json.Unmarshal(theirs, &u)
	json.Unmarshal(ours, &o)
	if len(u.Emperor) != 1 || len(o.Emperor) != 1 || u.Emperor[0] != o.Emperor[0] {
		t.Errorf("emperor %q, uWSGI's %q", o.Emperor, u.Emperor)
	}

	uv, ub := rawStats(t, theirs, "good.ini", "bad.ini")
	ov, ob := rawStats(t, ours, "good.ini", "bad.ini")
	if uv == nil || ov == nil || ub == nil || ob == nil {
		t.Fatalf("good.ini or bad.ini missing:\nuWSGI %s\nours %s", theirs, ours)
	}
	_, vals := sameSchema(t, "vassal good.ini", uv, ov)
	for _, k := range []string{"last_ready", "last_accepting", "first_run", "last_run", "born", "last_mod"} {
		if string(vals[k]) == "0" {
			t.Errorf("good.ini %s is 0, want the time: %s", k, ov)
		}
	}
	for _, k := range []string{"ready", "accepting"} {
		if string(vals[k]) != "1" {
			t.Errorf("good.ini %s = %s, want 1: %s", k, vals[k], ov)
		}
	}
	if string(vals["monitor"]) != fmt.Sprintf("%q", u.Emperor[0]) {
		t.Errorf("good.ini monitor %s, want %q", vals["monitor"], u.Emperor[0])
	}
	_, bvals := sameSchema(t, "blacklist entry bad.ini", ub, ob)
	var first, last int64
	json.Unmarshal(bvals["first_attempt"], &first)
	json.Unmarshal(bvals["last_attempt"], &last)
	if first == 0 || last < first || time.Since(time.Unix(first, 0)) > time.Hour {
		t.Errorf("bad.ini first_attempt %d last_attempt %d: %s", first, last, ob)
	}
}

// waitUntil polls cond until it holds or testkit.Deadline passes.
func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(testkit.Deadline)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// The stats, metrics and command servers listen on abstract unix sockets
// ("@name"), under uWSGI's spelling of the name (it counts the string's
// final NUL) and everyone else's, and only for the Emperor's uid and root.
func TestServersOnAbstractSockets(t *testing.T) {
	base := fmt.Sprintf("emperor-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	stats, metrics, command := "@"+base+"-stats", "@"+base+"-metrics", "@"+base+"-cmd"
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.Stats, o.Metrics, o.CommandSocket = stats, metrics, command
	}})
	writeFile(t, filepath.Join(dir, "app.ini"), h.vassalConfig("name = app\nsend = 1 5 17"))
	h.WaitState("app.ini", emperor.Running)
	h.WaitNote("loyal", emperortest.IsByte("app.ini", 17))

	for _, addr := range []string{stats, stats + "\x00"} {
		doc, err := readAll("unix", addr)
		if err != nil {
			t.Fatalf("stats at %q: %v", addr, err)
		}
		var s emperor.Stats
		if err := json.Unmarshal(doc, &s); err != nil {
			t.Fatalf("stats at %q: %v\n%s", addr, err, doc)
		}
		if s.Pid != os.Getpid() || len(s.Vassals) != 1 || s.Vassals[0].ID != "app.ini" || s.Vassals[0].LastLoyal == 0 {
			t.Errorf("stats at %q: %s", addr, doc)
		}
	}
	if _, err := os.Lstat(stats); err == nil {
		t.Errorf("a file %s was made for the abstract socket", stats)
	}

	// uWSGI's own client reaches it with uWSGI's spelling.
	if uwsgi, err := exec.LookPath("uwsgi"); err == nil {
		out, err := exec.Command(uwsgi, "--connect-and-read", stats).CombinedOutput() // it writes what it reads to stderr
		if err != nil || !bytes.Contains(out, []byte(`"id": "app.ini"`)) {
			t.Errorf("uwsgi --connect-and-read %s: %v\n%s", stats, err, out)
		}
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", metrics)
		},
	}}
	resp, err := client.Get("http://emperor/metrics")
	if err != nil {
		t.Fatalf("metrics on %s: %v", metrics, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`emperor_vassal_up{vassal="app.ini"`)) {
		t.Errorf("metrics on %s:\n%s", metrics, body)
	}

	c, err := net.DialTimeout("unix", command, 5*time.Second)
	if err != nil {
		t.Fatalf("command socket %s: %v", command, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, "reload app.ini")
	answer, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.HasPrefix(answer, "ok") {
		t.Errorf("command reload: %q", answer)
	}
	h.WaitNote("reload byte sent", func(n emperor.Note) bool { return n.Key.Name == "app.ini" && strings.HasPrefix(n.Reason, "reload") })

	t.Run("another user is refused", func(t *testing.T) {
		testenv.Root(t)
		uwsgi := testenv.UWSGI(t)
		for _, addr := range []string{stats, command} {
			cmd := exec.Command(uwsgi, "--connect-and-read", addr)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, _ := cmd.CombinedOutput()
			if !bytes.Contains(out, []byte("uid 65534 may not use this socket")) || bytes.Contains(out, []byte("app.ini")) {
				t.Errorf("%s as uid 65534: %q", addr, out)
			}
		}
	})
}
