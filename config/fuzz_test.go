package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

// fuzzMaxBytes keeps every fuzz run's memory small.
const fuzzMaxBytes = 1 << 20

// seedFiles adds the testdata configs with the given suffixes to f.
func seedFiles(f *testing.F, suffixes ...string) {
	f.Helper()
	for _, s := range suffixes {
		paths, err := filepath.Glob(filepath.Join("testdata", "*"+s))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, "")
			f.Add(b, "zerg")
		}
	}
}

// fuzzLoader is a Loader that reads no real files and keeps memory small.
func fuzzLoader() *config.Loader {
	l, _ := newLoader()
	l.MaxBytes = fuzzMaxBytes
	l.Warn = nil
	l.ReadFile = func(p string) ([]byte, error) {
		if p == "inc.ini" {
			return []byte("[uwsgi]\ninc = 1\n"), nil
		}
		return nil, os.ErrNotExist
	}
	l.Emperor = func(string) ([]byte, error) { return []byte("[uwsgi]\nfrom = emperor\n"), nil }
	// Never run what the fuzzer writes after exec://.
	l.Exec = func(string) ([]byte, error) { return []byte("uwsgi:\n  from: exec\n"), nil }
	return l
}

// fuzzParse parses text as format and checks what must hold for any input:
// no panic, an *Error on failure, options with names, and a Resolve that
// does not panic either.
func fuzzParse(t *testing.T, format config.Format, text []byte, section string) {
	l := fuzzLoader()
	name := "fuzz." + format.String()
	if section != "" {
		name += ":" + section
	}
	if bytes.Contains(text, []byte("for-glob")) {
		t.Skip("for-glob reads the real file system; TestLogicLoops covers it")
	}
	c, err := l.Parse(format, name, text)
	if err != nil {
		if _, ok := err.(*config.Error); !ok {
			t.Fatalf("error %T %q is not a *config.Error", err, err)
		}
		if c != nil {
			t.Fatal("config returned with an error")
		}
		return
	}
	for _, o := range c.Options {
		if o.Key == "" {
			t.Fatalf("option without a name: %+v", o)
		}
		if config.IsLogicKey(o.Key) {
			t.Fatalf("logic key returned as an option: %+v", o)
		}
		if o.Line < 0 {
			t.Fatalf("negative line: %+v", o)
		}
	}
	if err := c.Resolve(l); err != nil {
		if _, ok := err.(*config.Error); !ok {
			t.Fatalf("Resolve error %T %q is not a *config.Error", err, err)
		}
	}
}

func FuzzINI(f *testing.F) {
	seedFiles(f, ".ini")
	f.Add([]byte("[uwsgi]\nsocket = :3031\nmaster\n; comment\nenv = A=B\ninclude = inc.ini\nchdir = %(base)/x\nbase = $(HOME)\n"), "")
	f.Add([]byte("[uwsgi]\nini = :zerg\n[zerg]\nzerg = /tmp/z.sock\n"), "")
	f.Add([]byte("[uwsgi\r\n\tk\t=\tv\r\n=\n[]\n["), "")
	f.Add([]byte("[uwsgi]\na = %(b)\nb = %(a)\nc = %(a b + 1 ++)\n"), "")
	f.Add([]byte("[uwsgi]\nif-exists = inc.ini\ninclude = %(_)\nendif\nfor = a b\ns = %(_)\nendfor\nfor-times = 3\nn = %(_)\nend\n"), "")
	f.Add([]byte("[uwsgi]\nif-env = HOME=/home/app\nh = %(_)\nif-opt = h\nendif\nif-not-opt = x=1\nfor-readline = inc.ini\nl = %(_)\n"), "")
	f.Add([]byte("[uwsgi]\nif-hostname-match = ^h(o)st\nx=1\nend-if\nif-not-reload\nfor-times = 99999\nendfor"), "")
	f.Fuzz(func(t *testing.T, text []byte, section string) {
		fuzzParse(t, config.INI, text, section)
		// A line without '%', '=', newlines or comment and section marks,
		// that does not load a file, reads back as that flag.
		line := string(bytes.Trim(text, " \t\r"))
		_, loads := config.FormatFlag(line)
		loads = loads || line == "include" || line == "inherit" || config.IsLogicKey(line)
		if line != "" && !loads && !strings.ContainsAny(line, "%=\n;#[") {
			l := fuzzLoader()
			c, err := l.Parse(config.INI, "f.ini", []byte("[uwsgi]\n"+line))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Options) != 1 || c.Options[0].Key != line || c.Options[0].Value != "" {
				t.Fatalf("flag %q read as %+v", line, c.Options)
			}
		}
	})
}

func FuzzXML(f *testing.F) {
	seedFiles(f, ".xml")
	f.Add([]byte("<uwsgi><socket>:3031</socket><master/><env>A=1</env></uwsgi>"), "")
	f.Add([]byte("<r><uwsgi id=\"a\"><x id=\"b\">1</x><x id=\"a\">2</x></uwsgi></r>"), "a")
	f.Add([]byte("<?xml version=\"1.0\" encoding=\"latin1\"?><uwsgi><a><![CDATA[<>]]></a></uwsgi>"), "")
	f.Add([]byte("<uwsgi><include>inc.ini</include><ini>emperor://x.ini</ini></uwsgi>"), "")
	f.Fuzz(func(t *testing.T, text []byte, section string) {
		fuzzParse(t, config.XML, text, section)
	})
}

func FuzzYAML(f *testing.F) {
	seedFiles(f, ".yaml", ".yml")
	f.Add([]byte("uwsgi:\n  socket: :3031\n  env:\n    - A=1\n    - B=2\n  master: true\n"), "")
	f.Add([]byte("d: &d\n  a: 1\nuwsgi:\n  <<: *d\n  b: *d\n"), "")
	f.Add([]byte("a: &a [x, *a]\nuwsgi:\n  k: *a\n"), "")
	f.Add([]byte("uwsgi:\n  include: inc.ini\n"), "")
	f.Fuzz(func(t *testing.T, text []byte, section string) {
		fuzzParse(t, config.YAML, text, section)
	})
}

func FuzzJSON(f *testing.F) {
	seedFiles(f, ".json", ".js")
	f.Add([]byte(`{"uwsgi": {"socket": ":3031", "master": true, "n": 1.5e3, "v": null, "env": ["A=1", false]}}`), "")
	f.Add([]byte(`{"x": [[[{}]]], "uwsgi": {"a": "b", "a": "c"}}`), "")
	f.Add([]byte(`{"uwsgi": {"ini": "inc.ini", "json": "emperor://j.json"}}`), "")
	f.Add([]byte("{\n\"uwsgi\": {\n\"a\": 1,\n}\n}"), "")
	f.Fuzz(func(t *testing.T, text []byte, section string) {
		fuzzParse(t, config.JSON, text, section)
	})
}

func FuzzSplitSection(f *testing.F) {
	for _, s := range []string{"app.ini", "app.ini:zerg", ":zerg", "/etc/a:b/c.ini:d", "emperor://app.ini:zerg",
		"http://host:8080/app.ini", "exec://gen:x", "a://", "://x:y", "1a://b:c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		file, section := config.SplitSection(name)
		if section == "" {
			if file != name && file+":" != name {
				t.Fatalf("SplitSection(%q) = %q, %q", name, file, section)
			}
			return
		}
		if file+":"+section != name {
			t.Fatalf("SplitSection(%q) = %q, %q: does not rebuild the name", name, file, section)
		}
		if strings.Contains(section, ":") {
			t.Fatalf("SplitSection(%q): section %q holds a ':'", name, section)
		}
		// A name with a scheme never takes a section from before its last '/'.
		if i := strings.Index(name, "://"); i > 0 && strings.Trim(name[:i], "abcdefghijklmnopqrstuvwxyz") == "" {
			if strings.Contains(section, "/") {
				t.Fatalf("SplitSection(%q): section %q holds a '/'", name, section)
			}
		}
	})
}

func FuzzMagic(f *testing.F) {
	for _, s := range []string{
		"socket = /run/uwsgi/%n.sock", "chdir = %d../%c", "log = %v/%h-%t-%T.log", "x = %O%P%S%D%C%E%N%X%I%J",
		"y = %0/%1/%2/%3/%9 %k %u %U %g %G %V %b %[", "pct = 100%%", "ph = %(socket)", "end = %", "u = %\xff%\x00",
	} {
		f.Add("/etc/uwsgi/vassals/app.ini:uwsgi", []byte("[uwsgi]\n"+s+"\n"))
	}
	f.Add("emperor://app.ini", []byte("[uwsgi]\no = %o %n\n"))
	f.Add("rel/%n.ini", []byte("[uwsgi]\no = %o\n"))
	f.Fuzz(func(t *testing.T, name string, text []byte) {
		l := fuzzLoader()
		l.ReadFile = func(string) ([]byte, error) { return text, nil }
		c, err := l.Load(config.INI, name)
		if err != nil {
			if _, ok := err.(*config.Error); !ok {
				t.Fatalf("error %T %q is not a *config.Error", err, err)
			}
			return
		}
		// Text without '%' reads exactly as it would with no magic at all.
		if !bytes.Contains(text, []byte("%")) && !strings.ContainsAny(name, "\x00") {
			file, _ := config.SplitSection(name)
			if file == "" || strings.Contains(file, "://") {
				return
			}
			p, err := l.Parse(config.INI, name, text)
			if err != nil {
				return
			}
			a, b := keyvals(c), keyvals(p)
			if strings.Join(a, "\x00") != strings.Join(b, "\x00") {
				t.Fatalf("magic changed text without '%%':\n%q\n%q", a, b)
			}
		}
	})
}

// FuzzArgs reads a command line (one argument per line of the input) with
// UWSGI_* variables: getopt-style options, short-option clusters, bare
// config names and config logic must never panic, must fail only with an
// *Error, and must never return a logic key as an option.
func FuzzArgs(f *testing.F) {
	f.Add("-MLd\n/tmp/log\n--emperor\n/etc/vassals\ninc.ini", "UWSGI_MASTER=1")
	f.Add("--if-env\nHOME\n--set\nh=%(_)\n--endif\n--for=a b\n-s\n/run/%(_).sock\n--endfor", "UWSGI_EMPEROR=/x")
	f.Add("-Sk=v\n-C\n-C664\n--\n-x\n[skip", "UWSGI_INI=inc.ini")
	f.Add("--ini\nemperor://app.ini\n--if-not-opt\nk=v\n-p\n2\n--end", "UWSGI_RELOADS=1\nUWSGI_IF_EXISTS=inc.ini")
	f.Add("--config\nexec://gen.sh a b\n--config\ninc.ini\n--ini\nexec://x:zerg", "UWSGI_CONFIG=inc.ini")
	f.Fuzz(func(t *testing.T, argv, environ string) {
		if strings.Contains(argv, "for-glob") || strings.Contains(environ, "FOR_GLOB") {
			t.Skip("for-glob reads the real file system; TestLogicLoops covers it")
		}
		l := fuzzLoader()
		l.Environ = strings.Split(environ, "\n")
		var args []string
		if argv != "" {
			args = strings.Split(argv, "\n")
		}
		c, err := l.Args(args)
		if err != nil {
			if _, ok := err.(*config.Error); !ok {
				t.Fatalf("error %T %q is not a *config.Error", err, err)
			}
			return
		}
		for _, o := range c.Options {
			if o.Key == "" || config.IsLogicKey(o.Key) {
				t.Fatalf("bad option %+v", o)
			}
		}
		if err := c.Resolve(l); err != nil {
			if _, ok := err.(*config.Error); !ok {
				t.Fatalf("Resolve error %T %q is not a *config.Error", err, err)
			}
		}
	})
}
