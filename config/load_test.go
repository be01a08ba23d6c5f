package config_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

func TestIncludesAndInherit(t *testing.T) {
	dir := tempDir(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	writeFiles(t, dir, map[string]string{
		"base.ini":    "[uwsgi]\nprocesses = 2\nmaster = true\n",
		"tmpl.yaml":   "uwsgi:\n  harakiri: 30\n  processes: 1\n",
		"extra.json":  `{"uwsgi": {"socket": ":3031"}}`,
		"extra.xml":   "<uwsgi><env>X=1</env></uwsgi>",
		"extra2.yaml": "uwsgi:\n  env: Y=2\n",
		"app.ini": "[uwsgi]\nfirst = 1\nini = :other\ninclude = " + p("base.ini") + "\ninherit = " + p("tmpl.yaml") +
			"\njson = " + p("extra.json") + "\nxml = " + p("extra.xml") + "\nyml = " + p("extra2.yaml") +
			"\nprocesses = 8\n[other]\nother = yes\n",
	})
	l, warns := newLoader()
	c, err := l.Load(config.INI, p("app.ini"))
	if err != nil {
		t.Fatal(err)
	}
	want := "harakiri=30 processes=1 first=1 other=yes processes=2 master=true socket=:3031 env=X=1 env=Y=2 processes=8"
	if got := strings.Join(keyvals(c), " "); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got, _ := c.Get("processes"); got != "8" {
		t.Errorf("processes = %q, want the file's own 8", got)
	}
	o := c.Lookup("processes")[1]
	if o.File != p("base.ini") || o.Line != 2 {
		t.Errorf("included option at %s:%d, want base.ini:2", o.File, o.Line)
	}
	if o := c.Lookup("other")[0]; o.File != p("app.ini") || o.Line != 11 {
		t.Errorf("other at %s:%d, want app.ini:11", o.File, o.Line)
	}
	if len(*warns) > 0 {
		t.Errorf("warnings %q", *warns)
	}
}

func TestIncludeRelativeToProcessCwd(t *testing.T) {
	// Relative include paths are opened as given, that is relative to the
	// process's working directory (here the package directory).
	l, _ := newLoader()
	c, err := l.Parse(config.INI, "x.ini", []byte("[uwsgi]\ninclude = testdata/app.ini:zerg\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "zerg"); got != "/run/uwsgi/app-broodlord.sock" {
		t.Errorf("zerg = %q", got)
	}
	if o := c.Lookup("zerg")[0]; o.File != "testdata/app.ini" || o.Line != 16 {
		t.Errorf("zerg at %s:%d", o.File, o.Line)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := tempDir(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	writeFiles(t, dir, map[string]string{
		"missing.ini":  "[uwsgi]\na = 1\ninclude = " + p("nope.ini") + "\n",
		"noext.ini":    "[uwsgi]\ninclude = " + p("defaults.conf") + "\n",
		"empty.ini":    "[uwsgi]\n\ninherit =\n",
		"self.ini":     "[uwsgi]\nini = " + p("self.ini") + "\n",
		"same.ini":     "[uwsgi]\nini = :uwsgi\n",
		"bad.ini":      "[uwsgi]\njson = " + p("bad.json") + "\n",
		"bad.json":     "{\n\"uwsgi\": {\"a\": {}}}",
		"scheme.ini":   "[uwsgi]\ninclude = http://example.com/a.ini\n",
		"deep/a.ini":   "[uwsgi]\ninclude = " + p("deep/b.ini") + "\n",
		"deep/b.ini":   "[uwsgi]\ninclude = " + p("deep/c.ini") + "\n",
		"deep/c.ini":   "[uwsgi]\nok = 1\n",
		"emperor.ini":  "[uwsgi]\nini = emperor://x.ini\n",
		"sectionyaml":  "",
		"reuse.yaml":   "uwsgi:\n  ini: :zerg\n",
		"missingx.ini": "[uwsgi]\nxml = " + p("nope.xml") + "\n",
	})
	tests := []struct {
		name     string
		format   config.Format
		file     string
		maxDepth int
		want     []string
		is       error
	}{
		{"missing include names the including line", config.INI, p("missing.ini"), 0,
			[]string{p("missing.ini") + ":3: include: cannot read " + p("nope.ini") + ": no such file or directory"}, fs.ErrNotExist},
		{"missing top-level file", config.INI, p("absent.ini"), 0,
			[]string{p("absent.ini") + ": cannot read " + p("absent.ini") + ": no such file"}, fs.ErrNotExist},
		{"include of unknown extension", config.INI, p("noext.ini"), 0,
			[]string{p("noext.ini") + ":2: include: cannot tell the format", "(name it .ini"}, nil},
		{"inherit of nothing", config.INI, p("empty.ini"), 0, []string{p("empty.ini") + ":3: inherit: no config file named"}, nil},
		{"self include", config.INI, p("self.ini"), 0, []string{p("self.ini") + ":2: ini: include nesting too deep (cycle?)"}, nil},
		{"same file section cycle", config.INI, p("same.ini"), 0, []string{p("same.ini") + ":2: ini: include nesting too deep (cycle?)"}, nil},
		{"error inside included file", config.INI, p("bad.ini"), 0, []string{p("bad.json") + ":2: a: json: an object"}, nil},
		{"unsupported scheme", config.INI, p("scheme.ini"), 0, []string{p("scheme.ini") + ":2: include: cannot read http://example.com/a.ini: scheme http:// is not supported"}, nil},
		{"depth limit", config.INI, p("deep/a.ini"), 1, []string{p("deep/b.ini") + ":2: include: include nesting too deep (cycle?) (at most 1 levels)"}, nil},
		{"emperor scheme without channel", config.INI, p("emperor.ini"), 0, []string{"emperor://x.ini: not a vassal of an emperor with a config channel"}, nil},
		{"section reuse needs an ini file", config.YAML, p("reuse.yaml"), 0, []string{p("reuse.yaml") + ":2: ini: no config file named"}, nil},
		{"missing xml include", config.INI, p("missingx.ini"), 0, []string{p("missingx.ini") + ":2: xml: cannot read"}, fs.ErrNotExist},
		{"unknown format", config.Format(9), p("deep/c.ini"), 0, []string{"unknown config format Format(9)"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLoader()
			l.MaxDepth = tc.maxDepth
			c, err := l.Load(tc.format, tc.file)
			if c != nil {
				t.Errorf("got a config with an error: %v", keyvals(c))
			}
			wantError(t, err, tc.want...)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
		})
	}
}

func TestSectionReuseLastINI(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{"app.ini": "[uwsgi]\na = 1\n[zerg]\nz = 2\n"})
	l, _ := newLoader()
	c, err := l.Args([]string{"--ini", filepath.Join(dir, "app.ini"), "--ini", ":zerg"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keyvals(c), " "); got != "a=1 z=2" {
		t.Errorf("got %s", got)
	}
	// As in uWSGI, ":section" names the last ini file read, which after an
	// include is the included file.
	writeFiles(t, dir, map[string]string{
		"main.ini": "[uwsgi]\ninclude = " + filepath.Join(dir, "app.ini") + ":zerg\nini = :uwsgi\n[other]\nnot = read\n",
	})
	c, err = l.Load(config.INI, filepath.Join(dir, "main.ini"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keyvals(c), " "); got != "z=2 a=1" {
		t.Errorf("got %s", got)
	}
	if _, err := l.Args([]string{"--ini", ":zerg"}); err == nil {
		t.Error(":zerg with no earlier ini file: no error")
	}
}

func TestMaxBytes(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{
		"big.ini":   "[uwsgi]\n" + strings.Repeat("k = v\n", 100),
		"magic.ini": "[uwsgi]\n" + "k = %p%p%p%p%p%p%p%p%p%p%p%p%p%p%p%p%p%p%p%p\n",
	})
	// A finite but wide tree of includes: each level includes the next twice.
	for i := 0; i < 14; i++ {
		next := filepath.Join(dir, fmt.Sprintf("wide%d.ini", i+1))
		writeFiles(t, dir, map[string]string{
			fmt.Sprintf("wide%d.ini", i): "[uwsgi]\ninclude = " + next + "\ninclude = " + next + "\n",
		})
	}
	writeFiles(t, dir, map[string]string{"wide14.ini": "[uwsgi]\nk = v\n"})
	for _, tc := range []struct {
		file string
		max  int
	}{{"big.ini", 300}, {"magic.ini", 400}, {"wide0.ini", 1 << 16}} {
		t.Run(tc.file, func(t *testing.T) {
			l, _ := newLoader()
			l.MaxBytes = tc.max
			_, err := l.Load(config.INI, filepath.Join(dir, tc.file))
			wantError(t, err, "configuration too large")
		})
	}
}

func TestReadFileOverride(t *testing.T) {
	files := map[string]string{"/v/app.ini": "[uwsgi]\ninclude = /v/base.ini\nn = %n\n", "/v/base.ini": "[uwsgi]\nbase = 1\n"}
	l, _ := newLoader()
	l.ReadFile = func(p string) ([]byte, error) {
		s, ok := files[p]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		return []byte(s), nil
	}
	c, err := l.Load(config.INI, "/v/app.ini")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keyvals(c), " "); got != "base=1 n=app" {
		t.Errorf("got %s", got)
	}
}

func TestZeroLoader(t *testing.T) {
	var l config.Loader
	c, err := l.Load(config.INI, "testdata/emperor.ini")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Get("emperor"); got != "/etc/uwsgi/vassals" {
		t.Errorf("emperor = %q", got)
	}
	wd, _ := os.Getwd()
	c, err = config.NewLoader().Parse(config.INI, "x.ini", []byte("[uwsgi]\ncwd = %v\nv = %V\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "cwd"); got != wd {
		t.Errorf("%%v = %q, want %q", got, wd)
	}
	if got := get(t, c, "v"); got != config.DefaultVersion {
		t.Errorf("%%V = %q", got)
	}
}
