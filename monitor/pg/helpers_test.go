package pg_test

import (
	"os"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
	"github.com/emperor-dev/emperor/monitor/pg"
)

// testDB is a schema of its own in the test PostgreSQL, holding the
// example table and triggers of examples/pg/vassals.sql, notifying a
// channel of its own: tests never see each other's rows or notifications.
type testDB struct {
	t testing.TB
	// base connects to the database; conninfo also selects the schema.
	base, conninfo string
	schema         string
	channel        string
}

func newDB(t testing.TB) *testDB {
	t.Helper()
	base := testenv.Postgres(t)
	schema := testenv.PGName("emperor_pg")
	d := &testDB{t: t, base: base, conninfo: base + " search_path=" + schema, schema: schema, channel: schema}
	sql, err := os.ReadFile("../../examples/pg/vassals.sql")
	if err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(string(sql), "emperor_notify('emperor')", "emperor_notify('"+d.channel+"')")
	testenv.PGExec(t, base, "CREATE SCHEMA "+schema)
	testenv.PGCleanup(t, base, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	d.exec("SET client_min_messages = warning; " + script)
	return d
}

// exec runs SQL in the schema, each string in its own transaction.
func (d *testDB) exec(sql ...string) {
	d.t.Helper()
	testenv.PGExec(d.t, d.conninfo, sql...)
}

// monitor builds and starts a pg monitor with opts and s reading query
// (the default one when empty) on conninfo (the schema's when empty),
// listening on the schema's channel unless s names one, and waits for its
// first scan.
func (d *testDB) monitor(conninfo, query string, opts monitor.Options, s pg.Settings) *monitortest.Harness {
	d.t.Helper()
	if conninfo == "" {
		conninfo = d.conninfo
	}
	if query == "" {
		query = "SELECT name,config,ts FROM vassals"
	}
	if s.Channel == "" {
		s.Channel = d.channel
	}
	opts.Settings = monitor.SchemeSettings{"pg": &s}
	return monitortest.Start(d.t, pg.New, conninfo+";"+query, opts)
}

// insert adds a vassal row.
func (d *testDB) insert(name, config string) {
	d.t.Helper()
	d.exec("INSERT INTO vassals (name, config) VALUES ('" + name + "', '" + config + "')")
}

// noEvents fails if the monitor emitted anything for the names.
func noEvents(t testing.TB, evs []monitor.Event, names ...string) {
	t.Helper()
	for _, ev := range evs {
		for _, n := range names {
			if ev.Key.Name == n {
				t.Errorf("unexpected %s %s (%s)", ev.Op, n, ev.Reason)
			}
		}
	}
}
