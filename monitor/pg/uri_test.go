package pg

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/emperor-dev/emperor/monitor"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct{ arg, conn, query string }{
		{"host=db dbname=x", "host=db dbname=x", DefaultQuery},
		{"host=db dbname=x;SELECT a,b,c FROM t", "host=db dbname=x", "SELECT a,b,c FROM t"},
		{"host=db; SELECT 1;SELECT 2", "host=db", "SELECT 1;SELECT 2"},
		{"host=db;", "host=db", DefaultQuery},
		{"postgres://u:p@db/x?sslmode=disable;SELECT n,c,t FROM v", "postgres://u:p@db/x?sslmode=disable", "SELECT n,c,t FROM v"},
	} {
		got, err := ParseTarget(c.arg)
		if err != nil || got.ConnInfo != c.conn || got.Query != c.query {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %q, %q", c.arg, got, err, c.conn, c.query)
		}
	}
	for _, bad := range []string{"host=db port=notaport", "postgres://db:xx/", "host='unterminated"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) accepted", bad)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"host=db password=s3cret dbname=x":       "host=db password=xxxxx dbname=x",
		"host=db password = 'a b\\' c' dbname=x": "host=db password = xxxxx dbname=x",
		"postgres://u:s3cret@db/x":               "postgres://u:xxxxx@db/x",
		"postgres://u@db/x?password=s3cret":      "postgres://u@db/x?password=xxxxx",
		"host=db dbname=x":                       "host=db dbname=x",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	m, err := New("host=db password=s3cret;SELECT 1,2,3", monitorOptions())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.String(), "s3cret") {
		t.Errorf("String() leaks the password: %s", m)
	}
}

func TestModTime(t *testing.T) {
	ts := time.Date(2026, 11, 30, 12, 0, 0, 500_000_000, time.UTC)
	var num pgtype.Numeric
	if err := num.Scan("1700000000.25"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   any
		want int64
	}{
		{ts, ts.UnixNano()},
		{int64(1700000000), 1700000000 * int64(time.Second)},
		{int32(17), 17 * int64(time.Second)},
		{float64(1.5), 1500 * int64(time.Millisecond)},
		{num, 1700000000250 * int64(time.Millisecond)},
		{"1700000000.5", 1700000000500 * int64(time.Millisecond)},
	} {
		got, err := modTime(c.in)
		if err != nil || got != c.want {
			t.Errorf("modTime(%#v) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []any{nil, "yesterday", -1.0, true, pgtype.Infinity} {
		if _, err := modTime(bad); err == nil {
			t.Errorf("modTime(%#v) accepted", bad)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"host=127.0.0.1 user=postgres dbname=test;SELECT name,config,EXTRACT(epoch FROM ts) FROM vassals",
		"dbname=uwsgi",
		"postgres://emperor:secret@db:5432/fleet?sslmode=require;SELECT name,config,ts,uid,gid FROM vassals WHERE host='web1'",
		"host=db password='a;b';SELECT 1",
		";",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		tg, err := ParseTarget(arg)
		if err != nil {
			return
		}
		if tg.Query == "" || strings.Contains(tg.ConnInfo, ";") {
			t.Fatalf("ParseTarget(%q) = %+v", arg, tg)
		}
		_ = Redact(tg.ConnInfo)
	})
}

func monitorOptions() monitor.Options { return monitor.Options{} }
