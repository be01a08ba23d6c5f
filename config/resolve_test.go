package config_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

func TestResolve(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{"hostname": "node7\n", "motd": "line1\nline2\n\n", "crlf": "x\r\n"})
	tests := []struct {
		name string
		text string
		want map[string]string
	}{
		{"env", "home = $(HOME)/app\nnone = $(NOPE)\nempty = [$(EMPTY)]\nbare = $()\nopen = $(HOME",
			map[string]string{"home": "/home/app/app", "none": "$(NOPE)", "empty": "[]", "bare": "$()", "open": "$(HOME"}},
		{"files", "host = @(" + dir + "/hostname)\nmotd = @(" + dir + "/motd)\ncrlf = [@(" + dir + "/crlf)]",
			map[string]string{"host": "node7", "motd": "line1\nline2\n", "crlf": "[x]"}},
		{"placeholders", "base = /srv\nbase = /opt\nchdir = %(base)/app\nname = myapp\nsocket = /run/%(name).sock",
			map[string]string{"chdir": "/opt/app", "socket": "/run/myapp.sock"}},
		{"recursive placeholders", "a = %(b)/x\nb = %(c)y\nc = z",
			map[string]string{"a": "zy/x", "b": "zy", "c": "z"}},
		{"placeholder defined later", "socket = /run/%(name).sock\nname = late",
			map[string]string{"socket": "/run/late.sock"}},
		{"unknown placeholder stays", "a = %(nope)/x\nb = %()",
			map[string]string{"a": "%(nope)/x", "b": "%()"}},
		{"passes run in order", "name = n\nt = $(TPL)\nv = $(HOME)\nw = %(v)",
			map[string]string{"t": "n-tpl", "w": "/home/app"}},
		{"expressions", "processes = 2\ncores = 8\ncat = %(processes cores)\nsum = %(processes cores + 2)\ninc = %(processes ++)\n" +
			"dec = %(cores --)\nmul = %(processes * cores)\ndiv = %(cores / processes)\nzero = %(cores / 0)\nsub = %(processes - cores)\n" +
			"unknown = %(nope + 1)\nops = %(+ -)",
			map[string]string{"cat": "28", "sum": "30", "inc": "3", "dec": "7", "mul": "16", "div": "4", "zero": "0", "sub": "-6",
				"unknown": "1", "ops": "%(+ -)"}},
		{"nested parentheses in a name", "a = %(x(y))", map[string]string{"a": "%(x(y))"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLoader()
			c, err := l.Parse(config.INI, "app.ini", []byte("[uwsgi]\n"+tc.text+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Resolve(l); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if got := get(t, c, k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
		is   error
	}{
		{"cycle", "a = %(b)\nb = %(a)", []string{"app.ini:2: a: placeholder cycle: a -> b -> a"}, nil},
		{"self reference", "x = 1\nbase = %(base)/x", []string{"app.ini:3: base: placeholder cycle: base -> base"}, nil},
		{"cycle inside expression", "a = %(b 1)\nb = %(a)", []string{"app.ini:2: a: placeholder cycle"}, nil},
		{"unreadable file", "x = 1\nmotd = @(/nonexistent/motd)", []string{"app.ini:3: motd: cannot read /nonexistent/motd: no such file"}, fs.ErrNotExist},
		{"runaway growth", "a = %(b)%(b)%(b)%(b)\nb = %(c)%(c)%(c)%(c)\nc = %(d)%(d)%(d)%(d)\nd = %(e)%(e)%(e)%(e)\ne = " + strings.Repeat("x", 200),
			[]string{"app.ini:", "too"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLoader()
			l.MaxBytes = 20000
			c, err := l.Parse(config.INI, "app.ini", []byte("[uwsgi]\n"+tc.text+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Resolve(l)
			wantError(t, err, tc.want...)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
		})
	}
}

func TestResolveArgsAndNil(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{"app.ini": "[uwsgi]\nchdir = %(base)/app\n"})
	l, _ := newLoader()
	c, err := l.Args([]string{"--set", "base=/srv", "--ini", filepath.Join(dir, "app.ini"), "--home", "$(HOME)"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Resolve(l); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keyvals(c), " "); got != "base=/srv chdir=/srv/app home=/home/app" {
		t.Errorf("got %s", got)
	}
	var nilc *config.Config
	if err := nilc.Resolve(nil); err != nil {
		t.Errorf("nil config: %v", err)
	}
	c = &config.Config{Options: []config.Option{{Key: "a", Value: "%(b)"}, {Key: "b", Value: "1"}}}
	if err := c.Resolve(nil); err != nil || c.Options[0].Value != "1" {
		t.Errorf("nil loader: %v %v", err, c.Options)
	}
}
