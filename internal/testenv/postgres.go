package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the connection string of the PostgreSQL the tests use;
// by default the machine's own (127.0.0.1:5432, user postgres, database
// test, trust authentication).
const PostgresEnv = "EMPEROR_TEST_PG"

// PostgresConnInfo is the connection string Postgres checks.
func PostgresConnInfo() string {
	if s := os.Getenv(PostgresEnv); s != "" {
		return s
	}
	return "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
}

// Postgres returns the connection string of a reachable PostgreSQL, and
// skips the test (fails it under CI) when there is none.
func Postgres(t testing.TB) string {
	t.Helper()
	ci := PostgresConnInfo()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, ci)
	if err != nil {
		Missing(t, "PostgreSQL at "+ci+" (set "+PostgresEnv+"): "+err.Error())
	}
	c.Close(ctx)
	return ci
}

var pgSeq atomic.Int64

// PGName returns a table name no other test or process uses at the same
// time: prefix, this process's pid and a counter.
func PGName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), pgSeq.Add(1))
}

// PGExec runs SQL statements on a fresh connection and fails the test on
// the first error.
func PGExec(t testing.TB, conninfo string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, conninfo)
	if err != nil {
		t.Fatalf("connect %s: %v", conninfo, err)
	}
	defer c.Close(ctx)
	for _, s := range sql {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", strings.TrimSpace(s), err)
		}
	}
}

// PGCleanup runs SQL statements (DROP TABLE ..., DROP FUNCTION ...) when
// the test ends. Errors are logged, not fatal: PostgreSQL may be down.
func PGCleanup(t testing.TB, conninfo string, sql ...string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, conninfo)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer c.Close(ctx)
		for _, s := range sql {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Logf("cleanup: %s: %v", s, err)
			}
		}
	})
}
