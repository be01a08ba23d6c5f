package pg_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/pushtest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
	"github.com/emperor-dev/emperor/monitor/pg"
)

// emperorRun is an Emperor governing real uWSGI vassals from one pg://
// monitor.
type emperorRun struct {
	t     *testing.T
	notes chan emperor.Note
	log   *monitortest.LogBuffer
	// all keeps every note seen by waitNote, in order.
	all []emperor.Note
}

func startEmperor(t *testing.T, d *testDB, query string, freq time.Duration) *emperorRun {
	t.Helper()
	return startEmperorOn(t, d, d.conninfo, query, freq)
}

// startEmperorOn is startEmperor connecting with conninfo.
func startEmperorOn(t *testing.T, d *testDB, conninfo, query string, freq time.Duration) *emperorRun {
	t.Helper()
	uwsgi := testenv.UWSGI(t)
	r := &emperorRun{t: t, notes: make(chan emperor.Note, 4096), log: &monitortest.LogBuffer{}}
	logger := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ready := make(chan string, 1)
	m, err := pg.New(conninfo+";"+query, monitor.Options{Freq: freq, Ready: ready, Logger: logger, PGChannel: d.channel})
	if err != nil {
		t.Fatal(err)
	}
	em, err := emperor.New(emperor.Options{
		Monitors: []monitor.Monitor{m},
		Ready:    ready,
		Binary:   uwsgi,
		Env:      os.Environ(),
		Logger:   logger,
		Notify: func(n emperor.Note) {
			select {
			case r.notes <- n:
			default:
				panic("notes channel full")
			}
		},
		PanicOnIllegalTransition: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	pushtest.RunEmperor(t, em)
	return r
}

// waitNote returns the first note from now on matching pred.
func (r *emperorRun) waitNote(what string, pred func(emperor.Note) bool) emperor.Note {
	r.t.Helper()
	deadline := time.After(monitortest.Wait)
	for {
		select {
		case n := <-r.notes:
			r.all = append(r.all, n)
			if pred(n) {
				return n
			}
		case <-deadline:
			r.t.Fatalf("timed out waiting for %s; log:\n%s", what, r.log)
		}
	}
}

// drain returns the notes delivered so far.
func (r *emperorRun) drain() []emperor.Note {
	var got []emperor.Note
	for {
		select {
		case n := <-r.notes:
			r.all = append(r.all, n)
			got = append(got, n)
		default:
			return got
		}
	}
}

// waitLog waits for a log line containing every one of parts.
func (r *emperorRun) waitLog(parts ...string) {
	r.t.Helper()
	r.log.WaitFor(r.t, parts...)
}

// waitAccepting waits until every named vassal has sent byte 5, counting
// notes already seen.
func (r *emperorRun) waitAccepting(names ...string) {
	r.t.Helper()
	left := map[string]bool{}
	for _, n := range names {
		left[n] = true
	}
	for _, n := range r.all {
		if n.IsByte && n.Byte == 5 {
			delete(left, n.Key.Name)
		}
	}
	for len(left) > 0 {
		r.waitNote(fmt.Sprint("byte 5 from ", left), func(n emperor.Note) bool {
			if n.IsByte && n.Byte == 5 && left[n.Key.Name] {
				delete(left, n.Key.Name)
				return true
			}
			return false
		})
	}
}

// serving polls url until its body satisfies ok and returns the body.
func serving(t *testing.T, url string, ok func(string) bool) string {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(monitortest.Wait)
	var body string
	var err error
	for {
		var resp *http.Response
		if resp, err = c.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if ok(body) {
				return body
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served as expected: last body %q, err %v", url, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const envApp = `import os
def application(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [("generation %s worker %d\n" % (os.environ.get("GENERATION"), os.getpid())).encode()]
`

// A real uWSGI vassal configured by a PostgreSQL row serves; an UPDATE
// reloads it with the new text (never one version behind); a DELETE
// stops it.
func TestRealUWSGIVassalFromRow(t *testing.T) {
	testenv.UWSGI(t)
	d := newDB(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "app.py")
	if err := os.WriteFile(app, []byte(envApp), 0o644); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	conf := func(gen int) string {
		return fmt.Sprintf("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:%d\nwsgi-file = %s\nmaster = true\nprocesses = 1\nenv = GENERATION=%d\n", port, app, gen)
	}
	d.insert("py.ini", conf(1))
	r := startEmperor(t, d, "SELECT name,config,ts FROM vassals", time.Hour)
	r.waitAccepting("py.ini")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	serving(t, url, func(b string) bool { return strings.HasPrefix(b, "generation 1 ") })

	for gen := 2; gen <= 3; gen++ {
		d.exec(fmt.Sprintf("UPDATE vassals SET config = '%s' WHERE name = 'py.ini'", conf(gen)))
		r.waitNote("reload", func(n emperor.Note) bool { return n.Key.Name == "py.ini" && strings.HasPrefix(n.Reason, "reload") })
		want := fmt.Sprintf("generation %d ", gen)
		serving(t, url, func(b string) bool { return strings.HasPrefix(b, want) })
	}

	d.exec("DELETE FROM vassals WHERE name = 'py.ini'")
	r.waitNote("removal", func(n emperor.Note) bool { return n.Key.Name == "py.ini" && n.To == emperor.Absent })
}

// pgCluster returns the argv prefix that controls the machine's
// PostgreSQL cluster, or skips (fails under CI) when the test cannot.
//
// Restarting the server cuts every client of it, other tests' and other
// people's, so off CI it runs only when EMPEROR_TEST_PG_RESTART=1.
func pgCluster(t *testing.T) []string {
	t.Helper()
	if !testenv.CI() && os.Getenv("EMPEROR_TEST_PG_RESTART") != "1" {
		t.Skip("restarts the machine's PostgreSQL: runs under CI=true or with EMPEROR_TEST_PG_RESTART=1")
	}
	testenv.Root(t)
	ctl, err := exec.LookPath("pg_ctlcluster")
	if err != nil {
		testenv.Missing(t, "pg_ctlcluster (Debian's postgresql-common) to restart PostgreSQL")
	}
	versions, _ := filepath.Glob("/etc/postgresql/*/main")
	if len(versions) != 1 {
		testenv.Missing(t, "exactly one PostgreSQL cluster in /etc/postgresql/*/main")
	}
	return []string{ctl, "--skip-systemctl-redirect", filepath.Base(filepath.Dir(versions[0])), "main"}
}

// A PostgreSQL restart while vassals run stops or reloads none of them;
// once it is back, a change reaches only the vassal it concerns.
func TestDatabaseRestartLeavesVassalsAlone(t *testing.T) {
	testenv.UWSGI(t)
	ctl := pgCluster(t)
	d := newDB(t)
	dir := t.TempDir()
	conf := func(name string, gen int) string {
		return fmt.Sprintf("[uwsgi]\nhttp-socket = %s/%s.sock\nroute-run = return:200\nmaster = true\nprocesses = 1\nenv = GENERATION=%d\n", dir, name, gen)
	}
	for _, n := range []string{"a.ini", "b.ini"} {
		d.insert(n, conf(n, 1))
	}
	r := startEmperor(t, d, "SELECT name,config,ts FROM vassals", 500*time.Millisecond)
	r.waitAccepting("a.ini", "b.ini")
	r.drain()
	mark := len(r.all)

	run := func(action string) {
		t.Helper()
		out, err := exec.Command(ctl[0], append(ctl[1:], action)...).CombinedOutput()
		if err != nil {
			t.Fatalf("pg_ctlcluster %s: %v\n%s", action, err, out)
		}
	}
	t.Cleanup(func() { // leave PostgreSQL running whatever happens
		exec.Command(ctl[0], append(ctl[1:], "start")...).Run()
	})
	run("stop")
	r.waitLog("vassals keep running")
	r.waitLog("database unreachable")
	run("start")
	testenv.Postgres(t)
	r.waitLog("reconnected to the database; resyncing")
	r.waitLog("scanned", "reason=\"resync after reconnect\"", "events=0")

	d.exec(fmt.Sprintf("UPDATE vassals SET config = '%s' WHERE name = 'b.ini'", conf("b.ini", 2)))
	r.onlyBReloaded(mark)
}

// onlyBReloaded waits for b.ini's reload and checks that, since mark, no
// vassal changed state and a.ini was not reloaded.
func (r *emperorRun) onlyBReloaded(mark int) {
	r.t.Helper()
	r.waitNote("b reloads", func(n emperor.Note) bool { return n.Key.Name == "b.ini" && strings.HasPrefix(n.Reason, "reload") })
	r.drain()
	for _, n := range r.all[mark:] {
		if n.Key.Name == "a.ini" && !n.IsByte {
			r.t.Errorf("a.ini was touched by the outage: %s -> %s (%s)", n.From, n.To, n.Reason)
		}
		if n.Key.Name == "b.ini" && !n.IsByte && !strings.HasPrefix(n.Reason, "reload") {
			r.t.Errorf("b.ini: %s -> %s (%s)", n.From, n.To, n.Reason)
		}
	}
}

// The same through a cut connection, on every run: vassals keep running
// through the outage, and a change made meanwhile (its NOTIFY unheard)
// reloads only its vassal once the monitor is back.
func TestConnectionOutageLeavesVassalsAlone(t *testing.T) {
	testenv.UWSGI(t)
	d := newDB(t)
	proxy := testenv.NewProxy(t, "127.0.0.1:5432")
	dir := t.TempDir()
	conf := func(name string, gen int) string {
		return fmt.Sprintf("[uwsgi]\nhttp-socket = %s/%s.sock\nroute-run = return:200\nmaster = true\nprocesses = 1\nenv = GENERATION=%d\n", dir, name, gen)
	}
	for _, n := range []string{"a.ini", "b.ini"} {
		d.insert(n, conf(n, 1))
	}
	via := fmt.Sprintf("%s host=127.0.0.1 port=%d", d.conninfo, proxy.Port())
	r := startEmperorOn(t, d, via, "SELECT name,config,ts FROM vassals", time.Hour)
	r.waitAccepting("a.ini", "b.ini")
	r.drain()
	mark := len(r.all)

	proxy.Cut()
	r.waitLog("vassals keep running")
	d.exec(fmt.Sprintf("UPDATE vassals SET config = '%s' WHERE name = 'b.ini'", conf("b.ini", 2)))
	r.waitLog("database unreachable")
	proxy.Restore()
	r.onlyBReloaded(mark)
}

// Fleets: two Emperors share one table, each selecting its host's rows
// (in production with '%h' in its emperor.ini, see cmd/emperor). Each runs
// only its own; moving a row moves the vassal.
func TestFleetTwoEmperorsTakeOnlyTheirRows(t *testing.T) {
	testenv.UWSGI(t)
	d := newDB(t)
	dir := t.TempDir()
	conf := func(name string) string {
		return fmt.Sprintf("[uwsgi]\nhttp-socket = %s/%s.sock\nroute-run = return:200\nmaster = true\nprocesses = 1\n", dir, name)
	}
	d.exec(fmt.Sprintf(`INSERT INTO vassals (name, config, host) VALUES
		('a1.ini', '%s', 'alpha'), ('a2.ini', '%s', 'alpha'), ('b1.ini', '%s', 'beta'), ('other.ini', '%s', 'gamma')`,
		conf("a1"), conf("a2"), conf("b1"), conf("other")))
	query := func(host string) string {
		return "SELECT name,config,ts FROM vassals WHERE host = '" + host + "'"
	}
	alpha := startEmperor(t, d, query("alpha"), time.Hour)
	beta := startEmperor(t, d, query("beta"), time.Hour)
	alpha.waitAccepting("a1.ini", "a2.ini")
	beta.waitAccepting("b1.ini")

	d.exec("UPDATE vassals SET host = 'alpha' WHERE name = 'b1.ini'")
	beta.waitNote("b1 leaves beta", func(n emperor.Note) bool { return n.Key.Name == "b1.ini" && n.To == emperor.Absent })
	alpha.waitNote("b1 comes to alpha", func(n emperor.Note) bool { return n.Key.Name == "b1.ini" && n.To == emperor.Running })

	alpha.drain()
	beta.drain()
	for name, r := range map[string]*emperorRun{"alpha": alpha, "beta": beta} {
		for _, n := range r.all {
			if n.Key.Name == "other.ini" || (name == "beta" && strings.HasPrefix(n.Key.Name, "a")) ||
				(name == "alpha" && n.Key.Name == "b1.ini" && n.To == emperor.Stopping) {
				t.Errorf("%s: %s %s -> %s (%s)", name, n.Key.Name, n.From, n.To, n.Reason)
			}
		}
	}
}
