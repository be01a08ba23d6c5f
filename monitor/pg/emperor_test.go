package pg_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/pg"
)

// startEmperor runs an Emperor governing real uWSGI vassals from one pg://
// monitor.
func startEmperor(t *testing.T, d *testDB, query string, freq time.Duration) *emperortest.Emperor {
	t.Helper()
	return startEmperorOn(t, d, d.conninfo, query, freq)
}

// startEmperorOn is startEmperor connecting with conninfo.
func startEmperorOn(t *testing.T, d *testDB, conninfo, query string, freq time.Duration) *emperortest.Emperor {
	t.Helper()
	return emperortest.Start(t, emperortest.Setup{
		Monitors:       []string{"pg://" + conninfo + ";" + query},
		MonitorOptions: monitor.Options{Freq: freq, Settings: monitor.SchemeSettings{"pg": &pg.Settings{Channel: d.channel}}},
		Binary:         testenv.UWSGI(t),
	})
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
	r.WaitBytes(5, "py.ini")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	emperortest.WaitServing(t, url, func(b string) bool { return strings.HasPrefix(b, "generation 1 ") })

	for gen := 2; gen <= 3; gen++ {
		d.exec(fmt.Sprintf("UPDATE vassals SET config = '%s' WHERE name = 'py.ini'", conf(gen)))
		r.WaitNote(fmt.Sprintf("reload to generation %d", gen), isReload("py.ini"))
		want := fmt.Sprintf("generation %d ", gen)
		emperortest.WaitServing(t, url, func(b string) bool { return strings.HasPrefix(b, want) })
	}

	d.exec("DELETE FROM vassals WHERE name = 'py.ini'")
	r.WaitState("py.ini", emperor.Absent)
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
	r.WaitBytes(5, "a.ini", "b.ini")
	mark := len(r.Notes.All())

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
	r.Log.WaitFor(t, "vassals keep running")
	r.Log.WaitFor(t, "database unreachable")
	run("start")
	testenv.Postgres(t)
	r.Log.WaitFor(t, "reconnected to the database; resyncing")
	r.Log.WaitFor(t, "scanned", "reason=\"resync after reconnect\"", "events=0")

	d.exec(fmt.Sprintf("UPDATE vassals SET config = '%s' WHERE name = 'b.ini'", conf("b.ini", 2)))
	onlyBReloaded(t, r, mark)
}

// isReload matches the Emperor reloading the vassal name.
func isReload(name string) func(emperor.Note) bool {
	return func(n emperor.Note) bool { return n.Key.Name == name && strings.HasPrefix(n.Reason, "reload") }
}

// onlyBReloaded waits for b.ini's reload and checks that, from the note
// mark on, no vassal changed state and a.ini was not reloaded.
func onlyBReloaded(t *testing.T, r *emperortest.Emperor, mark int) {
	t.Helper()
	r.WaitNote("b reloads", isReload("b.ini"))
	for _, n := range r.Notes.All()[mark:] {
		if n.Key.Name == "a.ini" && !n.IsByte {
			t.Errorf("a.ini was touched by the outage: %s -> %s (%s)", n.From, n.To, n.Reason)
		}
		if n.Key.Name == "b.ini" && !n.IsByte && !strings.HasPrefix(n.Reason, "reload") {
			t.Errorf("b.ini: %s -> %s (%s)", n.From, n.To, n.Reason)
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
	r.WaitBytes(5, "a.ini", "b.ini")
	mark := len(r.Notes.All())

	proxy.Cut()
	r.Log.WaitFor(t, "vassals keep running")
	d.exec(fmt.Sprintf("UPDATE vassals SET config = '%s' WHERE name = 'b.ini'", conf("b.ini", 2)))
	r.Log.WaitFor(t, "database unreachable")
	proxy.Restore()
	onlyBReloaded(t, r, mark)
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
	alpha.WaitBytes(5, "a1.ini", "a2.ini")
	beta.WaitBytes(5, "b1.ini")

	d.exec("UPDATE vassals SET host = 'alpha' WHERE name = 'b1.ini'")
	beta.WaitState("b1.ini", emperor.Absent)
	alpha.WaitState("b1.ini", emperor.Running)

	for name, r := range map[string]*emperortest.Emperor{"alpha": alpha, "beta": beta} {
		for _, n := range r.Notes.All() {
			if n.Key.Name == "other.ini" || (name == "beta" && strings.HasPrefix(n.Key.Name, "a")) ||
				(name == "alpha" && n.Key.Name == "b1.ini" && n.To == emperor.Stopping) {
				t.Errorf("%s: %s %s -> %s (%s)", name, n.Key.Name, n.From, n.To, n.Reason)
			}
		}
	}
}
