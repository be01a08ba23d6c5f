package main

// The pg:// section: the time from a committed INSERT or UPDATE to the
// vassal serving, with LISTEN/NOTIFY and with polling only, and the load
// the monitor puts on PostgreSQL at 1,000 rows, beside uWSGI's emperor_pg
// when the Debian plugin uwsgi-plugin-emperor-pg is installed.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgSettings configure the section.
type pgSettings struct {
	conninfo     string // the server; the section creates its own database
	emperor      string
	uwsgi        string
	reps         int
	rows         int
	window       time.Duration
	logDir, work string
}

// pgKind is one way of running an Emperor on pg://.
type pgKind struct {
	key, label string
	argv       func(uri string) []string
	skip       string
}

const pgEmperorPlugin = "/usr/lib/uwsgi/plugins/emperor_pg_plugin.so"

func pgKinds(s *pgSettings) []*pgKind {
	ours := func(extra ...string) func(string) []string {
		return func(uri string) []string {
			return append([]string{s.emperor, "--emperor", uri, "--binary-path", s.uwsgi, "--emperor-freq", "3"}, extra...)
		}
	}
	uw := &pgKind{key: "uwsgi", label: "uWSGI emperor_pg", argv: func(uri string) []string {
		return []string{s.uwsgi, "--plugin", "emperor_pg", "--emperor", uri, "--emperor-freq", "3"}
	}}
	if _, err := os.Stat(pgEmperorPlugin); err != nil {
		uw.skip = "uwsgi-plugin-emperor-pg is not installed"
	}
	return []*pgKind{
		uw,
		{key: "notify", label: "ours, LISTEN/NOTIFY", argv: ours()},
		{key: "poll", label: "ours, polling only", argv: ours("--emperor-pg-channel", "off")},
	}
}

// runPGSection measures every kind and returns the table, or nil when
// PostgreSQL is unreachable (a note says so on stderr).
func runPGSection(s *pgSettings) *table {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, s.conninfo)
	if err != nil {
		progress("pg", "skipped: PostgreSQL at %q: %v", s.conninfo, err)
		return nil
	}
	defer admin.Close(ctx)
	dbName := fmt.Sprintf("emperor_bench_%d", os.Getpid())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		progress("pg", "skipped: %v", err)
		return nil
	}
	defer admin.Exec(ctx, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)")
	dbInfo := s.conninfo + " dbname=" + dbName
	db, err := pgx.Connect(ctx, dbInfo)
	if err != nil {
		progress("pg", "skipped: %v", err)
		return nil
	}
	defer db.Close(ctx)
	schema, err := os.ReadFile("examples/pg/vassals.sql")
	if err == nil {
		_, err = db.Exec(ctx, "SET client_min_messages = warning; "+string(schema))
	}
	if err != nil {
		progress("pg", "skipped: examples/pg/vassals.sql: %v", err)
		return nil
	}
	// uWSGI reads the time as a number; ours reads either.
	uri := "pg://" + dbInfo + ";SELECT name,config,EXTRACT(epoch FROM ts) FROM vassals"
	dir := mkdir(s.work, "pg")
	t := &table{head: []string{"pg:// monitor"}}
	rowNames := []string{
		"INSERT committed → vassal serving, p50 (p90)",
		"UPDATE committed → serving the new config, p50 (p90)",
		fmt.Sprintf("queries per minute at %d rows (connections)", s.rows),
		fmt.Sprintf("rows read per minute at %d rows", s.rows),
	}
	cells := make([][]string, len(rowNames))
	for _, k := range pgKinds(s) {
		t.head = append(t.head, k.label)
		if k.skip != "" {
			for i := range cells {
				cells[i] = append(cells[i], "n/a")
			}
			t.notes = append(t.notes, k.label+": "+k.skip)
			continue
		}
		progress("pg", "%s: latency, %d repetitions", k.label, s.reps)
		ins, upd, missed := pgLatency(ctx, s, k, db, uri, dir)
		cells[0] = append(cells[0], pgQuantiles(ins))
		cells[1] = append(cells[1], pgQuantiles(upd))
		if missed > 0 {
			t.notes = append(t.notes, fmt.Sprintf("%s: %d of %d changes never served within %v (not in the quantiles)", k.label, missed, 2*s.reps, pgChangeLimit))
		}
		progress("pg", "%s: load at %d rows over %v", k.label, s.rows, s.window)
		q, rows, note := pgLoad(ctx, s, k, db, admin, dbName, uri, dir)
		cells[2] = append(cells[2], q)
		cells[3] = append(cells[3], rows)
		if note != "" {
			t.notes = append(t.notes, k.label+": "+note)
		}
	}
	for i, n := range rowNames {
		t.rows = append(t.rows, append([]string{n}, cells[i]...))
	}
	t.notes = append(t.notes, "emperor-freq 3 s for all; the vassal is real uWSGI answering GET / with the status its config names (route-run = return:NNN); load counts every statement and row of the bench database in pg_stat_database, per minute")
	return t
}

func pgQuantiles(ms []float64) string {
	if len(ms) == 0 {
		return "failed"
	}
	return format(percentile(ms, 50), unitMS) + " (" + format(percentile(ms, 90), unitMS) + ")"
}

// pgStart runs an Emperor in its own process group, logging to logDir.
func pgStart(s *pgSettings, k *pgKind, uri, dir, tag string) (*exec.Cmd, error) {
	argv := k.argv(uri)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	logf, err := os.Create(filepath.Join(s.logDir, "pg-"+k.key+"-"+tag+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { cmd.Wait(); logf.Close() }()
	return cmd, nil
}

// pgStop ends an Emperor (Ragnarok), then its whole group.
func pgStop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) && syscall.Kill(cmd.Process.Pid, 0) == nil {
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// pgChangeLimit bounds the wait for one change to be served. uWSGI's
// emperor_pg compares whole seconds and misses an UPDATE made in the same
// second as the INSERT: it would wait forever.
const pgChangeLimit = 10 * time.Second

// pgLatency times INSERT → serving and UPDATE → serving the new config;
// missed counts the changes not served within pgChangeLimit.
func pgLatency(ctx context.Context, s *pgSettings, k *pgKind, db *pgx.Conn, uri, dir string) (ins, upd []float64, missed int) {
	db.Exec(ctx, "TRUNCATE vassals")
	cmd, err := pgStart(s, k, uri, dir, "latency")
	if err != nil {
		progress("pg", "%s: %v", k.label, err)
		return nil, nil, 0
	}
	defer pgStop(cmd)
	time.Sleep(time.Second) // let the Emperor connect and scan the empty table
	client := &http.Client{Timeout: time.Second}
	conf := func(port, status int) string {
		return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nroute-run = return:%d\nmaster = true\nprocesses = 1\n", port, status)
	}
	for rep := range s.reps {
		port, err := vbFreePort()
		if err != nil {
			continue
		}
		name := fmt.Sprintf("b%d.ini", rep)
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		start := time.Now()
		if _, err := db.Exec(ctx, "INSERT INTO vassals (name, config) VALUES ($1, $2)", name, conf(port, 201)); err != nil {
			progress("pg", "%s: insert: %v", k.label, err)
			return ins, upd, missed
		}
		if pgWaitStatus(client, url, 201, pgChangeLimit) {
			ins = append(ins, float64(time.Since(start).Microseconds())/1000)
		} else {
			missed++
		}
		start = time.Now()
		db.Exec(ctx, "UPDATE vassals SET config = $2, ts = clock_timestamp() WHERE name = $1", name, conf(port, 202))
		if pgWaitStatus(client, url, 202, pgChangeLimit) {
			upd = append(upd, float64(time.Since(start).Microseconds())/1000)
		} else {
			missed++
		}
		db.Exec(ctx, "DELETE FROM vassals WHERE name = $1", name)
		pgWaitStatus(client, url, 0, 30*time.Second)
	}
	return ins, upd, missed
}

// pgWaitStatus polls url until it answers with status (0: until it
// refuses connections) and reports whether it did in time.
func pgWaitStatus(c *http.Client, url string, status int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		got := 0
		if err == nil {
			got = resp.StatusCode
			resp.Body.Close()
		}
		if got == status {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

// pgLoad runs the Emperor on s.rows rows whose vassals are a sleeping
// shell (the load is the monitor's, not the vassals') and counts the
// statements, rows and connections of the bench database per minute.
// PostgreSQL publishes an idle backend's counters within about 10 s, so a
// short window is approximate.
func pgLoad(ctx context.Context, s *pgSettings, k *pgKind, db, admin *pgx.Conn, dbName, uri, dir string) (queries, rows, note string) {
	db.Exec(ctx, "TRUNCATE vassals")
	wrapper := filepath.Join(dir, "sleeper.sh")
	os.WriteFile(wrapper, []byte("#!/bin/sh\nexec sleep 3600\n"), 0o755)
	if _, err := db.Exec(ctx, `INSERT INTO vassals (name, config)
		SELECT 'v' || i || '.ini', '[uwsgi]' || chr(10) || 'n = ' || i FROM generate_series(1, $1) i`, s.rows); err != nil {
		return "failed", "failed", err.Error()
	}
	kk := *k
	base := k.argv
	kk.argv = func(uri string) []string {
		argv := base(uri)
		if k.key == "uwsgi" {
			return append(argv, "--emperor-wrapper", wrapper)
		}
		for i := range argv {
			if argv[i] == "--binary-path" {
				argv[i+1] = wrapper
			}
		}
		return argv
	}
	cmd, err := pgStart(s, &kk, uri, dir, "load")
	if err != nil {
		return "failed", "failed", err.Error()
	}
	defer pgStop(cmd)
	time.Sleep(15 * time.Second) // spawn the vassals, settle
	type stat struct{ xact, tup, sessions int64 }
	// Read from the admin connection, in another database, so that the
	// measurement does not count itself.
	read := func() (st stat) {
		admin.Exec(ctx, "SELECT pg_stat_clear_snapshot()")
		admin.QueryRow(ctx, `SELECT xact_commit + xact_rollback, tup_returned, sessions FROM pg_stat_database WHERE datname = $1`, dbName).
			Scan(&st.xact, &st.tup, &st.sessions)
		return st
	}
	a := read()
	time.Sleep(s.window)
	b := read()
	per := float64(time.Minute) / float64(s.window)
	queries = fmt.Sprintf("%.0f (%.0f)", float64(b.xact-a.xact)*per, float64(b.sessions-a.sessions)*per)
	rows = fmt.Sprintf("%.0f", float64(b.tup-a.tup)*per)
	return queries, rows, ""
}

// pgSettingsFrom derives the section's settings from the command line.
func pgSettingsFrom(s *settings, conninfo string, quick bool, work string) *pgSettings {
	ps := &pgSettings{conninfo: conninfo, emperor: s.emperor, uwsgi: s.uwsgi, reps: min(s.reps, 10),
		rows: 1000, window: time.Minute, logDir: s.logDir, work: work}
	if quick {
		ps.reps, ps.window = 3, 15*time.Second
	}
	if strings.TrimSpace(conninfo) == "" || conninfo == "off" {
		return nil
	}
	return ps
}
