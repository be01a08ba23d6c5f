package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/config"
)

// testEnv is a fully specified Env, so magic variables are deterministic.
func testEnv() config.Env {
	env := map[string]string{"HOME": "/home/app", "EMPTY": "", "TPL": "%(name)-tpl"}
	return config.Env{
		Getenv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		Hostname: "host1",
		Version:  "2.0.30-test",
		Binary:   "/usr/bin/emperor",
		Cwd:      "/work",
		CPUs:     8,
		Now:      time.Unix(1700000000, 123456000),
		UID:      "1000",
		User:     "app",
		GID:      "100",
		Group:    "users",
	}
}

// newLoader returns a Loader with testEnv and a record of its warnings.
func newLoader() (*config.Loader, *[]string) {
	var warns []string
	l := &config.Loader{Env: testEnv(), Warn: func(m string) { warns = append(warns, m) }}
	return l, &warns
}

// kv is an option without its file, for compact expectations.
type kv struct {
	K, V string
	Line int
}

// kvs strips the file from c's options.
func kvs(c *config.Config) []kv {
	if c == nil {
		return nil
	}
	out := []kv{}
	for _, o := range c.Options {
		out = append(out, kv{o.Key, o.Value, o.Line})
	}
	return out
}

// keyvals gives "key=value" for each option, for order checks.
func keyvals(c *config.Config) []string {
	out := []string{}
	for _, o := range c.Options {
		out = append(out, o.Key+"="+o.Value)
	}
	return out
}

// wantKVs fails unless c holds exactly want.
func wantKVs(t *testing.T, c *config.Config, want []kv) {
	t.Helper()
	if want == nil {
		want = []kv{}
	}
	if got := kvs(c); !reflect.DeepEqual(got, want) {
		t.Errorf("options:\n got %v\nwant %v", got, want)
	}
}

// wantError fails unless err is an *Error whose text contains each of
// wants, and returns it.
func wantError(t *testing.T, err error, wants ...string) *config.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", wants)
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %T %q is not a *config.Error", err, err)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	return ce
}

// writeFiles creates files (name → content) under dir, which must be a
// resolved path, and returns dir.
func writeFiles(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tempDir is t.TempDir with symlinks resolved, so it equals realpath output.
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}
