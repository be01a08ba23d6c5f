package pg_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/dbscan"
	"github.com/emperor-dev/emperor/monitor/monitortest"
	"github.com/emperor-dev/emperor/monitor/pg"
)

// With LISTEN/NOTIFY and a scan period of an hour, every change must
// arrive through the notification.
func TestInsertUpdateDeleteByNotify(t *testing.T) {
	d := newDB(t)
	h := d.monitor("", "", monitor.Options{}, pg.Settings{})

	d.insert("app.ini", "[uwsgi]\nv = 1\n")
	ev := h.WaitEvent(monitor.Touch, "app.ini")
	if string(ev.Config) != "[uwsgi]\nv = 1\n" || ev.Version.Hash == "" || ev.Version.ModTime == 0 {
		t.Errorf("created: config %q version %+v", ev.Config, ev.Version)
	}
	if !strings.Contains(ev.Reason, "created") || !strings.Contains(ev.Reason, "notify") {
		t.Errorf("reason %q, want created by notify", ev.Reason)
	}
	if ev.Key.Monitor != h.M.ID() {
		t.Errorf("key monitor %q, want %q", ev.Key.Monitor, h.M.ID())
	}

	d.exec("UPDATE vassals SET config = '[uwsgi]\nv = 2\n' WHERE name = 'app.ini'")
	ev2 := h.WaitEvent(monitor.Touch, "app.ini")
	if string(ev2.Config) != "[uwsgi]\nv = 2\n" || ev2.Version == ev.Version || !strings.Contains(ev2.Reason, "modified") {
		t.Errorf("modified: config %q reason %q version %+v (was %+v)", ev2.Config, ev2.Reason, ev2.Version, ev.Version)
	}

	// Only the time changes: still a reload, as in uWSGI.
	d.exec("UPDATE vassals SET ts = ts + interval '1 second' WHERE name = 'app.ini'")
	ev3 := h.WaitEvent(monitor.Touch, "app.ini")
	if ev3.Version.ModTime <= ev2.Version.ModTime || ev3.Version.Hash != ev2.Version.Hash {
		t.Errorf("touched: version %+v after %+v", ev3.Version, ev2.Version)
	}

	d.exec("DELETE FROM vassals WHERE name = 'app.ini'")
	h.WaitEvent(monitor.Destroy, "app.ini")
}

// Polling only (emperor-pg-channel = off): changes arrive at the next scan.
func TestPollingOnly(t *testing.T) {
	d := newDB(t)
	h := d.monitor("", "", monitor.Options{Freq: 200 * time.Millisecond}, pg.Settings{Channel: pg.ChannelOff})
	d.insert("poll.ini", "[uwsgi]\n")
	ev := h.WaitEvent(monitor.Touch, "poll.ini")
	if !strings.Contains(ev.Reason, "scan") {
		t.Errorf("reason %q, want a periodic scan", ev.Reason)
	}
	d.exec("DELETE FROM vassals")
	h.WaitEvent(monitor.Destroy, "poll.ini")
}

// The first scan announces what the table holds; an unchanged table emits
// nothing on later scans.
func TestFirstScanThenOnlyDifferences(t *testing.T) {
	d := newDB(t)
	d.insert("a.ini", "[uwsgi]\na = 1\n")
	d.insert("b.yaml", "uwsgi:\n  b: 1\n")
	h := d.monitor("", "", monitor.Options{}, pg.Settings{})
	if evs := h.Drain(); len(evs) != 2 {
		t.Fatalf("first scan: %s, want a.ini and b.yaml", monitortest.Describe(evs))
	}
	for i := 0; i < 3; i++ {
		h.M.Rescan()
		h.WaitLog("scanned", "reason=rescan")
		h.Log.Reset()
	}
	if evs := h.Drain(); len(evs) != 0 {
		t.Errorf("rescans of an unchanged table emitted %s", monitortest.Describe(evs))
	}
}

// Bad rows are refused with a message naming the row; good rows still
// count, and a known vassal whose row turns bad keeps running.
func TestBadRows(t *testing.T) {
	d := newDB(t)
	d.exec(`CREATE TABLE loose (name text, config text, ts timestamptz DEFAULT now(), uid int, gid int)`,
		`INSERT INTO loose (name, config) VALUES ('good.ini', '[uwsgi]'), ('nullcfg.ini', NULL),
			('app.txt', '[uwsgi]'), (NULL, '[uwsgi]'), ('empty.ini', '')`)
	h := d.monitor("", "SELECT name,config,ts FROM loose", monitor.Options{}, pg.Settings{})
	h.WaitEvent(monitor.Touch, "good.ini")
	h.WaitLog("bad row refused", `nullcfg.ini`, "config is NULL")
	h.WaitLog("bad row refused", `app.txt`, "no known config extension")
	h.WaitLog("bad row refused", "name (column 1): is NULL")
	h.WaitLog("bad row refused", `empty.ini`, "config is empty")
	noEvents(t, h.Drain(), "nullcfg.ini", "app.txt", "empty.ini")

	// Fixing a row brings it in; breaking a known one keeps its vassal.
	d.exec(`UPDATE loose SET config = '[uwsgi]' WHERE name = 'nullcfg.ini'`,
		`UPDATE loose SET config = NULL WHERE name = 'good.ini'`)
	h.M.Rescan()
	h.WaitEvent(monitor.Touch, "nullcfg.ini")
	h.WaitLog("keeps its last good config", "good.ini", "config is NULL")
	noEvents(t, h.Drain(), "good.ini")

	// Each problem is logged once, not on every scan.
	h.M.Rescan()
	h.WaitLog("scanned", "reason=rescan")
	if n := h.Log.Count("bad row refused", "app.txt"); n != 1 {
		t.Errorf("app.txt refused %d times in the log, want once", n)
	}
}

// Tyrant mode needs uid and gid columns and refuses root.
func TestTyrantRows(t *testing.T) {
	d := newDB(t)
	d.exec(`INSERT INTO vassals (name, config, uid, gid) VALUES ('root.ini', '[uwsgi]', 0, 0),
		('user.ini', '[uwsgi]', 1000, 1000), ('half.ini', '[uwsgi]', 1000, NULL)`)
	h := d.monitor("", "SELECT name,config,ts,uid,gid FROM vassals", monitor.Options{Tyrant: true}, pg.Settings{})
	ev := h.WaitEvent(monitor.Touch, "user.ini")
	if ev.Owner == nil || ev.Owner.UID != 1000 || ev.Owner.GID != 1000 {
		t.Errorf("owner %+v, want 1000:1000", ev.Owner)
	}
	h.WaitLog("bad row refused", "root.ini", "refuses uid 0 gid 0")
	h.WaitLog("bad row refused", "half.ini", "gid (column 5): is NULL")
	noEvents(t, h.Drain(), "root.ini", "half.ini")

	// An owner change is an event (the Emperor restarts the vassal as the
	// new owner).
	d.exec(`UPDATE vassals SET uid = 1001, ts = ts WHERE name = 'user.ini'`)
	h.WaitFor("owner change", func(ev monitor.Event) bool {
		return ev.Key.Name == "user.ini" && ev.Owner != nil && ev.Owner.UID == 1001
	})

	// Without uid and gid columns tyrant mode refuses the whole query.
	h2 := d.monitor("", "SELECT name,config,ts FROM vassals", monitor.Options{Tyrant: true}, pg.Settings{})
	h2.WaitLog("query failed", "tyrant mode needs uid and gid")
	if evs := h2.Drain(); len(evs) != 0 {
		t.Errorf("a query without uid/gid emitted %s in tyrant mode", monitortest.Describe(evs))
	}
}

// A query with too few columns, or one that fails, emits nothing: vassals
// stay.
func TestBadQueryKeepsVassals(t *testing.T) {
	d := newDB(t)
	h2 := d.monitor("", "SELECT name,config FROM vassals", monitor.Options{}, pg.Settings{})
	h2.WaitLog("query failed", "returns 2 columns")

	d.insert("keep.ini", "[uwsgi]")
	h := d.monitor("", "", monitor.Options{}, pg.Settings{})
	h.WaitEvent(monitor.Touch, "keep.ini")
	d.exec("ALTER TABLE vassals RENAME TO gone")
	h.M.Rescan()
	h.WaitLog("query failed", "does not exist")
	d.exec("ALTER TABLE gone RENAME TO vassals")
	h.M.Rescan()
	h.WaitLog("query works again")
	noEvents(t, h.Drain(), "keep.ini")
}

// An outage (the connection cut, reconnects refused) emits nothing; what
// changed meanwhile, including a NOTIFY nobody heard, arrives with the
// resync, and only that.
func TestOutageThenResync(t *testing.T) {
	d := newDB(t)
	proxy := testenv.NewProxy(t, "127.0.0.1:5432")
	via := fmt.Sprintf("%s host=127.0.0.1 port=%d", d.conninfo, proxy.Port())
	for _, n := range []string{"a.ini", "b.ini", "c.ini"} {
		d.insert(n, "[uwsgi]\nname = "+n+"\n")
	}
	h := d.monitor(via, "", monitor.Options{}, pg.Settings{})
	if evs := h.Drain(); len(evs) != 3 {
		t.Fatalf("first scan: %s", monitortest.Describe(evs))
	}
	mark := len(h.Seen)

	proxy.Cut()
	h.WaitLog("vassals keep running")
	d.exec("UPDATE vassals SET config = '[uwsgi]\nv = 2\n' WHERE name = 'b.ini'",
		"DELETE FROM vassals WHERE name = 'c.ini'")
	d.insert("d.ini", "[uwsgi]")
	// Attempts fail while the proxy is down; none may emit anything.
	h.WaitLog("database unreachable")
	if evs := h.Drain(); len(evs) != 0 {
		t.Fatalf("emitted during the outage: %s", monitortest.Describe(evs))
	}

	proxy.Restore()
	h.WaitLog("reconnected to the database; resyncing")
	got := h.WaitSet(h.Mark(), monitortest.Touch("b.ini"), monitortest.Destroy("c.ini"), monitortest.Touch("d.ini"))
	b := got[monitortest.Touch("b.ini")]
	if !strings.Contains(b.Reason, "resync") || string(b.Config) != "[uwsgi]\nv = 2\n" {
		t.Errorf("b.ini after resync: reason %q config %q", b.Reason, b.Config)
	}
	h.M.Rescan()
	h.WaitLog("scanned", "reason=rescan")
	h.Drain()
	noEvents(t, h.Seen[mark:], "a.ini")

	// LISTEN was renewed on the new connection.
	d.insert("e.ini", "[uwsgi]")
	h.WaitEvent(monitor.Touch, "e.ini")
}

// emperor-max-removals: a scan that would remove more vassals than allowed
// removes none; an explicit rescan applies the removals.
func TestMaxRemovals(t *testing.T) {
	d := newDB(t)
	for i := range 5 {
		d.insert(fmt.Sprintf("v%d.ini", i), "[uwsgi]")
	}
	h := d.monitor("", "", monitor.Options{}, pg.Settings{Scan: dbscan.Settings{MaxRemovals: 2}})
	if evs := h.Drain(); len(evs) != 5 {
		t.Fatalf("first scan: %s", monitortest.Describe(evs))
	}
	d.exec("DELETE FROM vassals WHERE name IN ('v0.ini', 'v1.ini')")
	h.WaitEvent(monitor.Destroy, "v0.ini")
	h.WaitEvent(monitor.Destroy, "v1.ini")

	d.exec("TRUNCATE vassals")
	h.WaitLog("removing none", "vanished=3", "max=2")
	noEvents(t, h.Drain(), "v2.ini", "v3.ini", "v4.ini")

	h.M.Rescan()
	for _, n := range []string{"v2.ini", "v3.ini", "v4.ini"} {
		h.WaitEvent(monitor.Destroy, n)
	}
}

// A query that times out (here PostgreSQL's statement_timeout) emits
// nothing; the vassals stay, and nothing is re-announced once it is fast
// again.
func TestQueryTimeoutKeepsVassals(t *testing.T) {
	d := newDB(t)
	d.insert("slow.ini", "[uwsgi]")
	d.exec("CREATE VIEW listing AS SELECT name, config, ts FROM vassals")
	h := d.monitor(d.conninfo+" statement_timeout=300", "SELECT name,config,ts FROM listing", monitor.Options{}, pg.Settings{})
	h.WaitEvent(monitor.Touch, "slow.ini")

	d.exec("CREATE OR REPLACE VIEW listing AS SELECT name, config, ts FROM vassals WHERE pg_sleep(1) IS NOT NULL")
	h.M.Rescan()
	h.WaitLog("query failed; vassals keep running", "statement timeout")
	d.exec("CREATE OR REPLACE VIEW listing AS SELECT name, config, ts FROM vassals")
	h.M.Rescan()
	h.WaitLog("query works again")
	noEvents(t, h.Drain(), "slow.ini")
}
