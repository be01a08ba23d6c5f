package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

func TestEnvOption(t *testing.T) {
	tests := []struct {
		kv, key, value string
		ok             bool
	}{
		{"UWSGI_EMPEROR=/etc/vassals", "emperor", "/etc/vassals", true},
		{"UWSGI_EMPEROR_TYRANT=1", "emperor-tyrant", "1", true},
		{"UWSGI_SOCKET=/run/%n.sock", "socket", "/run/%n.sock", true},
		{"UWSGI_ENV=A=B", "env", "A=B", true},
		{"UWSGI_MASTER=", "master", "", true},
		{"UWSGI_VASSAL_SOCKET=x", "vassal-socket", "x", true},
		{"HOME=/root", "", "", false},
		{"uwsgi_socket=x", "", "", false},
		{"UWSGI_=x", "", "", false},
		{"UWSGI_SOCKET", "", "", false},
		{"UWSGI_RELOADS=2", "", "", false},
		{"UWSGI_VASSALS_DIR=/x", "", "", false},
		{"UWSGI_EMPEROR_FD=3", "", "", false},
		{"UWSGI_BROODLORD_NUM=1", "", "", false},
		{"UWSGI_EMPEROR_FD_CONFIG=4", "", "", false},
		{"UWSGI_EMPEROR_PROXY=/x", "", "", false},
		{"UWSGI_JAIL_PID=9", "", "", false},
		{"UWSGI_ORIGINAL_PROC_NAME=uwsgi", "", "", false},
	}
	for _, tc := range tests {
		o, ok := config.EnvOption(tc.kv)
		if ok != tc.ok || o.Key != tc.key || o.Value != tc.value {
			t.Errorf("EnvOption(%q) = %q=%q %v, want %q=%q %v", tc.kv, o.Key, o.Value, ok, tc.key, tc.value, tc.ok)
		}
		if ok && o.File != "$"+strings.SplitN(tc.kv, "=", 2)[0] {
			t.Errorf("EnvOption(%q).File = %q", tc.kv, o.File)
		}
	}
}

// TestArgsEnviron: UWSGI_* variables are options read before the command
// line, so the command line wins for scalar options; their values are not
// magic-expanded; a refusal names the variable.
func TestArgsEnviron(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{"app.ini": "[uwsgi]\nfrom-ini = %n\n"})
	l, _ := newLoader()
	l.Environ = []string{"PATH=/bin", "UWSGI_EMPEROR=/etc/vassals", "UWSGI_PROCESSES=2", "UWSGI_SOCKET=/run/%n.sock",
		"UWSGI_INI=" + filepath.Join(dir, "app.ini"), "UWSGI_RELOADS=3"}
	c, err := l.Args([]string{"--processes", "4"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(keyvals(c), " "), "emperor=/etc/vassals processes=2 socket=/run/%n.sock from-ini=app processes=4"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if v, _ := c.Get("processes"); v != "4" {
		t.Errorf("processes = %q, the command line must win", v)
	}

	l.Environ = []string{"UWSGI_INI=/nonexistent/x.ini"}
	_, err = l.Args(nil)
	wantError(t, err, "$UWSGI_INI: ini: cannot read /nonexistent/x.ini")

	l.Environ = nil
	t.Setenv("UWSGI_LEAK", "1")
	c, err = l.Args(nil)
	if err != nil || len(c.Options) != 0 {
		t.Errorf("nil Environ read options: %v %v", keyvals(c), err)
	}
}
