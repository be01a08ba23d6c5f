package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/config"
)

// writeScript writes an executable config: a shell script printing text.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestExecConfigReadsTheCommandsOutput(t *testing.T) {
	dir := tempDir(t)
	script := filepath.Join(dir, "app.ini")
	writeScript(t, script, "echo '[uwsgi]'\necho 'socket = :3031'\necho \"from = $1\"\n")
	for _, tc := range []struct{ name, args string }{
		{"plain words, no shell", "--ini exec://" + script + " arg1"},
		{"through /bin/sh", "--ini exec://" + script + " 'arg1'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLoader()
			first, rest, _ := strings.Cut(tc.args, " ")
			c, err := l.Args([]string{first, rest})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(keyvals(c), " "); got != "socket=:3031 from=arg1" {
				t.Errorf("options %q, want the script's output", got)
			}
		})
	}
}

func TestExecConfigFailuresNameTheCommand(t *testing.T) {
	dir := tempDir(t)
	failing := filepath.Join(dir, "fail.ini")
	writeScript(t, failing, "echo '[uwsgi]'\necho 'cannot reach the database' >&2\nexit 3\n")
	slow := filepath.Join(dir, "slow.ini")
	writeScript(t, slow, "exec sleep 60\n")
	big := filepath.Join(dir, "big.ini")
	writeScript(t, big, "echo '[uwsgi]'\nwhile :; do echo 'k = vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv'; done\n")
	for _, tc := range []struct {
		name, cmd string
		want      []string
		tooLarge  bool
	}{
		{"non-zero exit", failing, []string{"exec://" + failing, "exit status 3", "cannot reach the database"}, false},
		{"missing", filepath.Join(dir, "nope.ini"), []string{"exec://" + filepath.Join(dir, "nope.ini"), "no such file"}, false},
		{"overrun", slow, []string{"exec://" + slow, "still running after 200ms: killed"}, false},
		{"endless output", big, []string{"exec://" + big}, true},
		{"empty", "", []string{"exec://", "no command"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLoader()
			l.ExecTimeout = 200 * time.Millisecond
			l.MaxBytes = 64 << 10
			if tc.tooLarge {
				l.ExecTimeout = time.Minute
			}
			_, err := l.Args([]string{"--ini", "exec://" + tc.cmd})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *config.Error", err)
			}
			if tc.tooLarge && !strings.Contains(err.Error(), "too large") {
				t.Errorf("error %q does not say the output is too large", err)
			}
		})
	}
}

func TestConfigFlagReadsAnyExtension(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{
		"ini.conf":   "# an ini\n[uwsgi]\nsocket = :1\n",
		"bare.conf":  "socket = :2\n", // no section: nothing read, as an ini
		"yaml.conf":  "# a yaml\nuwsgi:\n  socket: ':3'\n",
		"json.conf":  `{"uwsgi": {"socket": ":4"}}`,
		"xml.conf":   "<uwsgi>\n<socket>:5</socket>\n</uwsgi>\n",
		"named.yaml": "uwsgi:\n  socket: ':6'\n",
	})
	writeScript(t, filepath.Join(dir, "exec.conf"), "echo '[uwsgi]'; echo 'socket = :7'\n")
	for file, want := range map[string]string{
		"ini.conf": ":1", "bare.conf": "", "yaml.conf": ":3", "json.conf": ":4", "xml.conf": ":5", "named.yaml": ":6",
		"exec://" + filepath.Join(dir, "exec.conf"): ":7",
	} {
		t.Run(file, func(t *testing.T) {
			l, _ := newLoader()
			arg := file
			if !strings.HasPrefix(file, "exec://") {
				arg = filepath.Join(dir, file)
			}
			c, err := l.Args([]string{"--config", arg})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := c.Get("socket"); got != want {
				t.Errorf("socket = %q, want %q", got, want)
			}
		})
	}
}
