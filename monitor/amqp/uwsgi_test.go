package amqp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor/amqp"
	"github.com/emperor-dev/emperor/monitor/push"
)

// TestAMQP_RealUWSGI pushes real uWSGI vassals to an Emperor over RabbitMQ
// with pika: a direct config (delivered over the config fd) serves, is
// respawned by the core after kill -9; a config file path and an http URL
// serve; an empty body stops the first; after an Emperor restart the
// journal brings back the others without any message.
func TestAMQP_RealUWSGI(t *testing.T) {
	b := newBroker(t)
	testenv.UWSGI(t)
	dir, state := t.TempDir(), t.TempDir()
	p1, p2 := testenv.FreePort(t), testenv.FreePort(t)
	url1, url2 := fmt.Sprintf("http://127.0.0.1:%d/", p1), fmt.Sprintf("http://127.0.0.1:%d/", p2)
	mopts := b.options(amqp.Settings{Push: push.Settings{StateDir: state, AllowedDirs: []string{dir}}})
	value := "amqp://" + b.arg

	e := emperortest.Start(t, emperortest.Setup{Monitors: []string{value}, MonitorOptions: mopts, Binary: testenv.UWSGI(t)})
	e.Log.WaitFor(t, "consuming")
	b.publish("direct.ini", []byte(emperortest.UWSGIConfig(p1, "direct")))
	run := e.WaitState("direct.ini", emperor.Running)
	emperortest.WaitAnswer(t, url1, "served by direct")

	// A crash: the core respawns the pushed vassal (uWSGI loses it, B4/B18).
	if err := syscall.Kill(run.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	again := e.WaitNote("respawn of direct.ini", func(n emperor.Note) bool {
		return !n.IsByte && n.Key.Name == "direct.ini" && n.To == emperor.Running && n.Pid != run.Pid
	})
	emperortest.WaitAnswer(t, url1, "served by direct")
	t.Logf("killed pid %d, respawned as %d", run.Pid, again.Pid)

	app := filepath.Join(dir, "app.ini")
	if err := os.WriteFile(app, []byte(emperortest.UWSGIConfig(p2, "file")), 0o644); err != nil {
		t.Fatal(err)
	}
	b.publish("", []byte(app))
	e.WaitState(app, emperor.Running)
	emperortest.WaitAnswer(t, url2, "served by file")

	// A URL: the Emperor fetches the config and hands it over the config fd.
	p3 := testenv.FreePort(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprint(w, emperortest.UWSGIConfig(p3, "url"))
	}))
	defer srv.Close()
	confURL := srv.URL + "/confs/fetched.ini"
	b.publish("", []byte(confURL))
	e.WaitState(confURL, emperor.Running)
	emperortest.WaitAnswer(t, fmt.Sprintf("http://127.0.0.1:%d/", p3), "served by url")

	b.publish("direct.ini", nil)
	e.WaitState("direct.ini", emperor.Absent)
	emperortest.WaitDown(t, url1)

	// Restart the Emperor: Ragnarok stops app.ini, the new Emperor replays
	// the journal and runs it again, with no message sent.
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	emperortest.WaitDown(t, url2)
	e2 := emperortest.Start(t, emperortest.Setup{Monitors: []string{value}, MonitorOptions: mopts, Binary: testenv.UWSGI(t)})
	e2.WaitState(app, emperor.Running)
	emperortest.WaitAnswer(t, url2, "served by file")
	srv.Close() // the fetched copy is journaled: no need to fetch again
	e2.WaitState(confURL, emperor.Running)
	emperortest.WaitAnswer(t, fmt.Sprintf("http://127.0.0.1:%d/", p3), "served by url")
	if code, _, err := emperortest.Get(url1); err == nil {
		t.Errorf("direct.ini, destroyed before the restart, came back (status %d)", code)
	}
}

// TestAMQP_BrokerRestart takes RabbitMQ away while a pushed real uWSGI
// vassal runs: the monitor logs the loss, the vassal keeps serving with the
// same pid through the outage, and once the broker is back the monitor has
// reconnected (with backoff) and acts on the next message.
//
// Under CI=true or with EMPEROR_TEST_AMQP_RESTART=1 the machine's RabbitMQ
// is really stopped and started; otherwise the Emperor reaches it through
// a proxy the test cuts, which is the same outage as the Emperor sees it
// and disturbs nobody else (a second test run beside this one restarting
// the broker too made both miss their messages).
func TestAMQP_BrokerRestart(t *testing.T) {
	b := newBroker(t)
	testenv.UWSGI(t)
	p1, p2 := testenv.FreePort(t), testenv.FreePort(t)
	url1 := fmt.Sprintf("http://127.0.0.1:%d/", p1)
	arg, outage := b.arg, func(during func()) { testenv.RestartRabbitMQ(t, during) }
	if !testenv.CI() && os.Getenv("EMPEROR_TEST_AMQP_RESTART") != "1" {
		proxy := testenv.NewProxy(t, testenv.RabbitMQAddr)
		arg = strings.Replace(arg, testenv.RabbitMQAddr, fmt.Sprintf("127.0.0.1:%d", proxy.Port()), 1)
		outage = func(during func()) {
			proxy.Cut()
			defer proxy.Restore()
			during()
		}
	}
	e := emperortest.Start(t, emperortest.Setup{Monitors: []string{"amqp://" + arg}, MonitorOptions: b.options(amqp.Settings{}), Binary: testenv.UWSGI(t)})
	e.Log.WaitFor(t, "consuming")
	b.publish("before.ini", []byte(emperortest.UWSGIConfig(p1, "before")))
	run := e.WaitState("before.ini", emperor.Running)
	emperortest.WaitAnswer(t, url1, "served by before")

	outage(func() {
		e.Log.WaitFor(t, "lost the broker")
		e.Log.WaitFor(t, "cannot reach the broker")
		emperortest.WaitAnswer(t, url1, "served by before")
	})
	if !e.Log.Await(testkit.Deadline, func() bool { return e.Log.Count("consuming") >= 2 }) {
		t.Fatalf("the monitor did not consume again after the broker came back; log:\n%s", e.Log)
	}
	if err := syscall.Kill(run.Pid, 0); err != nil {
		t.Errorf("vassal pid %d gone after the broker restart: %v", run.Pid, err)
	}
	emperortest.WaitAnswer(t, url1, "served by before")
	b.publish("after.ini", []byte(emperortest.UWSGIConfig(p2, "after")))
	e.WaitState("after.ini", emperor.Running)
	emperortest.WaitAnswer(t, fmt.Sprintf("http://127.0.0.1:%d/", p2), "served by after")
}
