package amqp_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/amqp"
	"github.com/emperor-dev/emperor/monitor/monitortest"
	"github.com/emperor-dev/emperor/monitor/push"
)

// broker is one test's RabbitMQ, its own exchange and Debian's pika.
type broker struct {
	t        *testing.T
	arg      string
	exchange string
	py       string
}

var exchangeSeq atomic.Int64

func newBroker(t *testing.T) *broker {
	arg := testenv.RabbitMQ(t)
	py := testenv.Python3(t, "pika")
	ex := fmt.Sprintf("emperor.test.%d.%d.%s", os.Getpid(), exchangeSeq.Add(1), t.Name())
	return &broker{t: t, arg: arg, py: py, exchange: strings.ReplaceAll(ex, "/", ".")}
}

// publish sends one message with pika (testdata/publish.py).
func (b *broker) publish(key string, body []byte) {
	b.t.Helper()
	cmd := exec.Command(b.pyPath(), "testdata/publish.py", "127.0.0.1", "5672", b.exchange, key)
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("publish with pika: %v: %s", err, out)
	}
}

func (b *broker) pyPath() string {
	if b.py == "" {
		b.py = testenv.Python3(b.t, "pika")
	}
	return b.py
}

// options are monitor options giving amqp:// monitors s, bound to this
// test's exchange.
func (b *broker) options(s amqp.Settings) monitor.Options {
	s.Exchange = b.exchange
	return monitor.Options{Settings: monitor.SchemeSettings{"amqp": &s}}
}

// start runs an amqp:// monitor with s on this test's exchange and waits
// until it consumes.
func (b *broker) start(s amqp.Settings) *monitortest.Harness {
	b.t.Helper()
	h := monitortest.Start(b.t, monitor.Open, "amqp://"+b.arg, b.options(s))
	h.WaitLog("consuming")
	return h
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAMQP_PathSpawnReloadStop(t *testing.T) {
	b := newBroker(t)
	dir := t.TempDir()
	r := b.start(amqp.Settings{Push: push.Settings{AllowedDirs: []string{dir}}})
	app := filepath.Join(dir, "app.ini")
	writeFile(t, app, "[uwsgi]\n")

	b.publish("", []byte(app))
	ev := r.Expect(monitor.Touch, app)
	if ev.Path != app || ev.Config != nil {
		t.Errorf("path message: Path %q Config %q, want a file config at %s", ev.Path, ev.Config, app)
	}
	if ev.Owner == nil || ev.Owner.UID != uint32(os.Getuid()) {
		t.Errorf("owner %+v, want the file's owner uid %d", ev.Owner, os.Getuid())
	}
	// Re-publishing reloads: a newer version, as uWSGI reloads on every message.
	b.publish("", []byte(app+"\n"))
	again := r.Expect(monitor.Touch, app)
	if again.Version == ev.Version {
		t.Errorf("second message carries the same version %+v: the Emperor would not reload", ev.Version)
	}
	os.Remove(app)
	b.publish("", []byte(app))
	r.Expect(monitor.Destroy, app)
}

func TestAMQP_DirectConfig(t *testing.T) {
	b := newBroker(t)
	r := b.start(amqp.Settings{})
	conf := "[uwsgi]\nsocket = :3031\nprocesses = 4\n"
	b.publish("mydomain_trac_config.ini", []byte(conf))
	ev := r.Expect(monitor.Touch, "mydomain_trac_config.ini")
	if string(ev.Config) != conf || ev.Path != "" || ev.Version.Hash == "" {
		t.Errorf("direct config: Config %q Path %q Hash %q", ev.Config, ev.Path, ev.Version.Hash)
	}
	b.publish("mydomain_trac_config.ini", nil)
	r.Expect(monitor.Destroy, "mydomain_trac_config.ini")
}

func TestAMQP_URL(t *testing.T) {
	b := newBroker(t)
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(int(status.Load()))
		fmt.Fprintf(w, "[uwsgi]\nhttp-socket = :9999\n")
	}))
	defer srv.Close()
	r := b.start(amqp.Settings{})
	url := srv.URL + "/confs/trac.ini"
	b.publish("", []byte(url))
	ev := r.Expect(monitor.Touch, url)
	if !strings.Contains(string(ev.Config), "http-socket") {
		t.Errorf("fetched config %q", ev.Config)
	}
	status.Store(404)
	b.publish("", []byte(url))
	r.Expect(monitor.Destroy, url)
}

// TestAMQP_Malformed sends messages the monitor must refuse: each gets a
// log line naming why, emits nothing (the next event is the marker sent
// after it) and the monitor keeps consuming.
func TestAMQP_Malformed(t *testing.T) {
	b := newBroker(t)
	dir, outside := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outside, "evil.ini"), "[uwsgi]\n")
	hang := hangingServer(t)
	r := b.start(amqp.Settings{FetchTimeout: time.Second, Push: push.Settings{AllowedDirs: []string{dir}, NamePattern: `[a-z0-9_-]+\.ini`}})

	garbage := []byte{0xff, 0xfe, 0x00, 0x01, 0x80, 'x', 0x00}
	cases := []struct {
		name string
		key  string
		body []byte
		log  string
	}{
		{"binary garbage", "", garbage, "must be a config path or an http(s) URL"},
		{"binary config", "bin.ini", garbage, "NUL byte"},
		{"huge body", "huge.ini", bytes.Repeat([]byte("# padding\n"), 200_000), "larger than the limit"},
		{"path outside allowed dirs", "", []byte(filepath.Join(outside, "evil.ini")), "outside every emperor-push-allowed-dir"},
		{"relative path", "", []byte("evil.ini"), "must be an absolute config path"},
		{"name without extension", "noext", []byte("[uwsgi]\n"), "not a vassal config name"},
		{"name against the pattern", "Bad Name.ini", []byte("[uwsgi]\n"), "does not match emperor-push-name-pattern"},
		{"URL that hangs", "", []byte(hang.URL + "/slow.ini"), "config fetch failed"},
	}
	for i, c := range cases {
		b.publish(c.key, c.body)
		r.WaitLog(c.log)
		marker := fmt.Sprintf("marker%d.ini", i)
		b.publish(marker, []byte("[uwsgi]\n"))
		if ev := r.Next("marker after " + c.name); ev.Key.Name != marker {
			t.Errorf("%s: emitted %s %s, want nothing before the marker", c.name, ev.Op, ev.Key.Name)
		}
	}
}

func TestAMQP_JournalReplay(t *testing.T) {
	b := newBroker(t)
	dir, state := t.TempDir(), t.TempDir()
	app := filepath.Join(dir, "app.ini")
	writeFile(t, app, "[uwsgi]\n")
	s := amqp.Settings{Push: push.Settings{StateDir: state}}
	r := b.start(s)
	b.publish("", []byte(app))
	r.Expect(monitor.Touch, app)
	b.publish("inline.ini", []byte("[uwsgi]\nx = 1\n"))
	r.Expect(monitor.Touch, "inline.ini")
	b.publish("gone.ini", []byte("[uwsgi]\n"))
	r.Expect(monitor.Touch, "gone.ini")
	b.publish("gone.ini", nil)
	r.Expect(monitor.Destroy, "gone.ini")
	r.Stop()

	// A new monitor (an Emperor restart) replays what was asked for before
	// it even reaches the broker.
	r2 := monitortest.Start(t, monitor.Open, "amqp://"+b.arg, b.options(s))
	got := map[string]monitor.Event{}
	for range 2 {
		ev := r2.Next("replayed touch")
		if ev.Op != monitor.Touch {
			t.Fatalf("replay emitted %s %s", ev.Op, ev.Key.Name)
		}
		got[ev.Key.Name] = ev
	}
	if ev, ok := got[app]; !ok || ev.Path != app {
		t.Errorf("path vassal not replayed: %+v", got)
	}
	if ev, ok := got["inline.ini"]; !ok || string(ev.Config) != "[uwsgi]\nx = 1\n" {
		t.Errorf("inline vassal not replayed with its config: %+v", got)
	}
	select {
	case ev := <-r2.Events:
		t.Errorf("unexpected replayed event %s %s", ev.Op, ev.Key.Name)
	default:
	}
}

// TestAMQP_FetchesBounded: URL messages whose servers hang occupy at most 8
// fetches; the next one is refused with a log line, and direct configs
// still flow meanwhile.
func TestAMQP_FetchesBounded(t *testing.T) {
	b := newBroker(t)
	hang := hangingServer(t)
	r := b.start(amqp.Settings{FetchTimeout: time.Minute})
	for i := range 9 {
		b.publish("", []byte(fmt.Sprintf("%s/slow%d.ini", hang.URL, i)))
	}
	r.WaitLog("too many config fetches in flight", "slow8.ini")
	b.publish("direct.ini", []byte("[uwsgi]\n"))
	r.Expect(monitor.Touch, "direct.ini")
}

// hangingServer is an HTTP server that never answers: each request waits
// until its client gives up or the test ends.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	t.Cleanup(func() {
		close(release)
		hang.Close()
	})
	return hang
}
