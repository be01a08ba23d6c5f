package zmq_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/journal"
	"github.com/emperor-dev/emperor/monitor/monitortest"
	"github.com/emperor-dev/emperor/monitor/push"
	"github.com/emperor-dev/emperor/monitor/zmq"
)

// pusher pushes commands with libzmq through Debian's python3-zmq.
type pusher struct {
	t        *testing.T
	py       string
	endpoint string
}

func newPusher(t *testing.T) *pusher {
	py := testenv.Python3(t, "zmq")
	return &pusher{t: t, py: py, endpoint: fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))}
}

// push sends parts; a part "@-" is stdin.
func (p *pusher) push(stdin []byte, parts ...string) {
	p.t.Helper()
	cmd := exec.Command(p.py, append([]string{"testdata/push.py", p.endpoint}, parts...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("push with python3-zmq: %v: %s", err, out)
	}
}

func TestZMQ_TouchDestroy(t *testing.T) {
	p := newPusher(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "file.ini"), "[uwsgi]\n")
	r := monitortest.Start(t, monitor.Open, "zmq://"+p.endpoint, pushOptions(push.Settings{AllowedDirs: []string{dir}}))

	conf := "[uwsgi]\nhttp-socket = :0\n"
	p.push(nil, "touch", "inline.ini", conf)
	ev := r.Expect(monitor.Touch, "inline.ini")
	if string(ev.Config) != conf || ev.Owner != nil {
		t.Errorf("inline touch: Config %q Owner %+v", ev.Config, ev.Owner)
	}
	// A second touch at once reloads (uWSGI ignores it within a second).
	p.push(nil, "touch", "inline.ini", conf)
	if again := r.Expect(monitor.Touch, "inline.ini"); again.Version == ev.Version {
		t.Errorf("second touch has the same version: no reload")
	}
	// Tyrant uid and gid from the message parts.
	p.push(nil, "touch", "tenant.ini", conf, "1001", "1002")
	if ev := r.Expect(monitor.Touch, "tenant.ini"); ev.Owner == nil || *ev.Owner != (monitor.Owner{UID: 1001, GID: 1002}) {
		t.Errorf("owner %+v, want 1001:1002", ev.Owner)
	}
	// No config: a file relative to the allowed directory.
	p.push(nil, "touch", "file.ini")
	ev = r.Expect(monitor.Touch, "file.ini")
	if ev.Path != filepath.Join(dir, "file.ini") || ev.Config != nil {
		t.Errorf("file touch: Path %q Config %q", ev.Path, ev.Config)
	}
	p.push(nil, "touch", "file2.ini", "", "1001", "1002", "")
	r.WaitLog("no such config file", "file2.ini")
	p.push(nil, "destroy", "inline.ini")
	r.Expect(monitor.Destroy, "inline.ini")
	p.push(nil, "destroy", "file.ini")
	r.Expect(monitor.Destroy, "file.ini")
}

func TestZMQ_Malformed(t *testing.T) {
	p := newPusher(t)
	dir, outside := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outside, "evil.ini"), "[uwsgi]\n")
	r := monitortest.Start(t, monitor.Open, "zmq://"+p.endpoint, pushOptions(push.Settings{AllowedDirs: []string{dir}}))
	garbage := []byte{0xff, 0x00, 0xfe, 'a'}
	cases := []struct {
		name  string
		stdin []byte
		parts []string
		log   string
	}{
		{"one part", nil, []string{"touch"}, "want at least a command and a name"},
		{"unknown command", nil, []string{"explode", "a.ini"}, "unknown command"},
		{"binary name", garbage, []string{"touch", "@-", "[uwsgi]\n"}, "control characters"},
		{"binary config", garbage, []string{"touch", "bin.ini", "@-"}, "NUL byte"},
		{"huge config", bytes.Repeat([]byte("# padding\n"), 106_000), []string{"touch", "huge.ini", "@-"}, "larger than the limit"},
		{"huge frame", bytes.Repeat([]byte("# padding\n"), 300_000), []string{"touch", "huger.ini", "@-"}, "zmq peer cut off"},
		{"bad uid", nil, []string{"touch", "u.ini", "[uwsgi]\n", "root"}, "bad uid"},
		{"path outside", nil, []string{"touch", filepath.Join(outside, "evil.ini")}, "outside every emperor-push-allowed-dir"},
		{"escaping path", nil, []string{"touch", "../" + filepath.Base(outside) + "/evil.ini"}, "outside every emperor-push-allowed-dir"},
	}
	for i, c := range cases {
		p.push(c.stdin, c.parts...)
		r.WaitLog(c.log)
		marker := fmt.Sprintf("marker%d.ini", i)
		p.push(nil, "touch", marker, "[uwsgi]\n")
		if ev := r.Next("marker after " + c.name); ev.Key.Name != marker {
			t.Errorf("%s: emitted %s %s, want nothing before the marker", c.name, ev.Op, ev.Key.Name)
		}
	}
}

func TestParseCommand(t *testing.T) {
	b := func(s ...string) [][]byte {
		var out [][]byte
		for _, x := range s {
			out = append(out, []byte(x))
		}
		return out
	}
	c, err := zmq.ParseCommand(b("touch", "a.ini", "cfg", "10", "20", ""))
	if err != nil || c.Owner == nil || *c.Owner != (monitor.Owner{UID: 10, GID: 20}) || string(c.Config) != "cfg" || c.Socket != "" {
		t.Errorf("5 parts plus an empty socket: %+v %v", c, err)
	}
	c, err = zmq.ParseCommand(b("touch", "a.ini", "", ""))
	if err != nil || c.Config != nil || c.Owner != nil {
		t.Errorf("empty config and uid are absent: %+v %v", c, err)
	}
	if _, err := zmq.ParseCommand(b("touch", "a.ini", "", "", "5")); err == nil {
		t.Error("a gid without a uid accepted")
	}
	if _, err := zmq.ParseCommand(b("a", "b", "c", "d", "e", "f", "g")); err == nil {
		t.Error("7 parts accepted")
	}
}

func FuzzParseCommand(f *testing.F) {
	f.Add([]byte("touch"), []byte("app.ini"), []byte("[uwsgi]\nsocket = :3031\n"), []byte("1000"), []byte("1000"))
	f.Add([]byte("destroy"), []byte("app.ini"), []byte(""), []byte(""), []byte(""))
	f.Add([]byte("touch"), []byte("vassals/app.xml"), []byte(""), []byte("-1"), []byte("x"))
	f.Fuzz(func(t *testing.T, a, b, c, d, e []byte) {
		for n := 0; n <= 5; n++ {
			parts := [][]byte{a, b, c, d, e}[:n]
			cmd, err := zmq.ParseCommand(parts)
			if err == nil && cmd.Op != "touch" && cmd.Op != "destroy" {
				t.Fatalf("accepted command %q", cmd.Op)
			}
		}
	})
}

// pushOptions are monitor options giving zmq:// monitors s.
func pushOptions(s push.Settings) monitor.Options {
	return monitor.Options{Settings: monitor.SchemeSettings{"zmq": &s}}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestZMQ_IPC(t *testing.T) {
	p := newPusher(t)
	p.endpoint = "ipc://" + filepath.Join(t.TempDir(), "emperor.sock")
	r := monitortest.Start(t, monitor.Open, "zmq://"+p.endpoint, monitor.Options{})
	p.push(nil, "touch", "ipc.ini", "[uwsgi]\n")
	r.Expect(monitor.Touch, "ipc.ini")
	if _, err := zmq.New("udp://127.0.0.1:5252", monitor.Options{}); err == nil {
		t.Error("a udp:// endpoint accepted")
	}
}

// TestZMQ_JournalFull pushes to a monitor whose emperor-state-dir is a full
// 64 KiB tmpfs: the touch that cannot be journaled is reported (one error
// line, then a debug line per retry, and the monitor's Status), neither
// emitted nor written, a destroy pushed after it waits behind it, and both
// land, in order, once space is freed.
func TestZMQ_JournalFull(t *testing.T) {
	testenv.Root(t)
	p := newPusher(t)
	state := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", state).CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("mount a tmpfs: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", state).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", state, err, out)
		}
	})
	r := monitortest.Start(t, monitor.Open, "zmq://"+p.endpoint, pushOptions(push.Settings{StateDir: state}))
	p.push(nil, "touch", "first.ini", "[uwsgi]\n")
	r.Expect(monitor.Touch, "first.ini")

	filler := filepath.Join(state, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 4096))
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v, want ENOSPC", err)
	}

	big := "[uwsgi]\n" + strings.Repeat("# padding\n", 1000)
	p.push(nil, "touch", "big.ini", big)
	r.WaitLog("cannot write the push journal", "no space left on device", "pending=1")
	p.push(nil, "destroy", "first.ini")
	r.WaitLogs(2, "push journal write failed again")
	r.ExpectNone(r.Drain(), "while the journal is full")
	st := r.M.(monitor.Reporter).Status()
	if st["journal_pending"] != 1 || st["journal_errors"].(uint64) < 3 || !strings.Contains(st["journal_last_error"].(string), "no space left") {
		t.Errorf("status while full: %v", st)
	}
	// What a restart would replay: the journal holds first.ini only.
	jpath := st["journal_file"].(string)
	if b, err := os.ReadFile(jpath); err != nil {
		t.Error(err)
	} else if entries, err := journal.Decode(b); err != nil || len(entries) != 1 || entries[0].Name != "first.ini" {
		t.Errorf("the full journal holds %+v (%v), want first.ini only", entries, err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if ev := r.Expect(monitor.Touch, "big.ini"); string(ev.Config) != big {
		t.Errorf("big.ini landed with %d bytes of config, want %d", len(ev.Config), len(big))
	}
	r.Expect(monitor.Destroy, "first.ini")
	r.WaitLog("push journal written again")
	if n := r.Log.Count("cannot write the push journal"); n != 1 {
		t.Errorf("the failure was logged %d times at error level, want once; log:\n%s", n, r.Log)
	}
	if st := r.M.(monitor.Reporter).Status(); st["journal_pending"] != 0 || st["journal_last_error"] != "" {
		t.Errorf("status after the space came back: %v", st)
	}
	b, _ := os.ReadFile(jpath)
	if entries, err := journal.Decode(b); err != nil || len(entries) != 1 || entries[0].Name != "big.ini" {
		t.Errorf("the journal holds %+v (%v), want big.ini only", entries, err)
	}
	r.Stop()
}
