package vassal_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// orderedKeys returns the keys of the JSON object raw in their order, and
// its values.
func orderedKeys(t *testing.T, what string, raw []byte) ([]string, map[string]json.RawMessage) {
	t.Helper()
	var vals map[string]json.RawMessage
	if err := json.Unmarshal(raw, &vals); err != nil {
		t.Fatalf("%s is not a JSON object: %v\n%s", what, err, raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.Token() // {
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys, vals
}

// kindOf is the JSON type of a value.
func kindOf(v json.RawMessage) string {
	b := bytes.TrimSpace(v)
	if len(b) == 0 {
		return "none"
	}
	switch b[0] {
	case '"':
		return "string"
	case '[':
		return "array"
	case '{':
		return "object"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// compareObjects checks that ours begins with every key of uWSGI's object,
// in uWSGI's order, each of the same JSON type, and returns ours.
func compareObjects(t *testing.T, what string, theirs, ours []byte) map[string]json.RawMessage {
	t.Helper()
	tk, tv := orderedKeys(t, "uWSGI's "+what, theirs)
	ok, ov := orderedKeys(t, "our "+what, ours)
	for i, k := range tk {
		if i >= len(ok) || ok[i] != k {
			t.Errorf("%s: uWSGI's key %d is %q; ours are %q, uWSGI's %q", what, i, k, ok, tk)
			return ov
		}
		if a, b := kindOf(tv[k]), kindOf(ov[k]); a != b {
			t.Errorf("%s: %q is a %s (%s) in ours, a %s (%s) in uWSGI's", what, k, b, ov[k], a, tv[k])
		}
	}
	return ov
}

// firstOf returns the first element of the list under key in obj.
func firstOf(t *testing.T, what string, obj map[string]json.RawMessage, key string) []byte {
	t.Helper()
	var list []json.RawMessage
	if err := json.Unmarshal(obj[key], &list); err != nil || len(list) == 0 {
		t.Fatalf("%s: no %s: %s (%v)", what, key, obj[key], err)
	}
	return list[0]
}

// readStats reads one stats document from a TCP stats server.
func readStats(addr string) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return io.ReadAll(c)
}

// uwsgiInstanceStats is a uWSGI instance's stats as a tool written for
// them (uwsgitop, say) reads them: both documents decode into it.
type uwsgiInstanceStats struct {
	Version     string `json:"version"`
	ListenQueue uint64 `json:"listen_queue"`
	Load        uint64 `json:"load"`
	Pid         int    `json:"pid"`
	Sockets     []struct {
		Name, Proto string
		Queue       uint64
		MaxQueue    uint64 `json:"max_queue"`
	} `json:"sockets"`
	Workers []struct {
		ID, Pid, Accepting int
		Requests           uint64
		Status             string
		RSS, VSZ           uint64
		LastSpawn          int64 `json:"last_spawn"`
		RespawnCount       int   `json:"respawn_count"`
		Apps, Cores        []json.RawMessage
	} `json:"workers"`
	Daemons []struct {
		Cmd      string
		Pid      int
		Respawns int
	} `json:"daemons"`
}

// Our vassal's stats read as a real uWSGI instance's: the same app setup
// (an http-socket on port 0, two workers, a daemon) under `uwsgi --stats`
// and under ours gives two documents where every key of uWSGI's (at the
// top, in a socket, a worker and a daemon) is ours too, in uWSGI's order
// and of the same JSON type, and a uWSGI tool's reading of both agrees on
// what they have in common.
func TestStats_ReadAsUWSGIInstanceStats(t *testing.T) {
	uwsgi := testenv.UWSGI(t)
	needBinaries(t)
	dir := t.TempDir()
	writeFile(t, dir, "app.py", "def application(env, start_response):\n    start_response('200 OK', [])\n    return [b'hi']\n")

	theirsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cmd := exec.Command(uwsgi, "--plugin", "python3", "--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py",
		"--master", "--processes", "2", "--stats", theirsAddr, "--attach-daemon", "sleep 600")
	cmd.Dir = dir
	output := &testkit.Log{}
	cmd.Stdout, cmd.Stderr = output, output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(testkit.Deadline):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group the test made
			<-exited
		}
		if t.Failed() {
			t.Logf("uWSGI output:\n%s", output.String())
		}
	})

	oursAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:0\nworker-exec = %s\nworkers = 2\nstats = %s\nattach-daemon = sleep 600\n", bins.hello, oursAddr))
	startVassal(t, []string{"--ini", ini}, nil)

	// Each document once both workers and the daemon run.
	settled := func(addr string) []byte {
		var doc []byte
		var s uwsgiInstanceStats
		waitFor(t, testkit.Deadline, "two running workers and a daemon in the stats at "+addr, func() bool {
			var err error
			if doc, err = readStats(addr); err != nil || json.Unmarshal(doc, &s) != nil {
				return false
			}
			running := 0
			for _, w := range s.Workers {
				if w.Pid > 0 && w.Accepting == 1 {
					running++
				}
			}
			return running == 2 && len(s.Daemons) == 1 && s.Daemons[0].Pid > 0
		})
		return doc
	}
	theirs, ours := settled(theirsAddr), settled(oursAddr)

	top := compareObjects(t, "stats", theirs, ours)
	_, theirTop := orderedKeys(t, "uWSGI's stats", theirs)
	compareObjects(t, "socket", firstOf(t, "uWSGI's stats", theirTop, "sockets"), firstOf(t, "our stats", top, "sockets"))
	compareObjects(t, "worker", firstOf(t, "uWSGI's stats", theirTop, "workers"), firstOf(t, "our stats", top, "workers"))
	compareObjects(t, "daemon", firstOf(t, "uWSGI's stats", theirTop, "daemons"), firstOf(t, "our stats", top, "daemons"))

	var u, o uwsgiInstanceStats
	json.Unmarshal(theirs, &u)
	json.Unmarshal(ours, &o)
	if len(u.Sockets) != 1 || len(o.Sockets) != 1 {
		t.Fatalf("sockets: uWSGI's %+v, ours %+v", u.Sockets, o.Sockets)
	}
	// port 0 is shown as the port bound, "http" for an http-socket.
	for who, s := range map[string]uwsgiInstanceStats{"uWSGI's": u, "ours": o} {
		sk := s.Sockets[0]
		if host, port, err := net.SplitHostPort(sk.Name); err != nil || host != "127.0.0.1" || port == "0" || sk.Proto != "http" {
			t.Errorf("%s socket %+v, want 127.0.0.1:PORT, proto http", who, sk)
		}
		for _, w := range s.Workers {
			if w.Status != "idle" || w.RespawnCount != 1 || w.LastSpawn == 0 || w.Apps == nil || w.Cores == nil {
				t.Errorf("%s worker %+v, want idle, spawned once, apps and cores lists", who, w)
			}
		}
		if s.Daemons[0].Cmd != "sleep 600" {
			t.Errorf("%s daemon %+v", who, s.Daemons[0])
		}
	}
	// uWSGI's master reads max_queue from the kernel a moment after it
	// starts; ours has it from the start.
	if o.Sockets[0].MaxQueue == 0 {
		t.Errorf("our socket %+v has no max_queue", o.Sockets[0])
	}
}
