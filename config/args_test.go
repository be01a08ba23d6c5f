package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	dir := tempDir(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	writeFiles(t, dir, map[string]string{
		"app.ini":   "[uwsgi]\nsocket = /run/%n.sock\nprocesses = 4\n[zerg]\nzerg = z\n",
		"app.xml":   "<uwsgi><threads>2</threads></uwsgi>",
		"app.yaml":  "uwsgi:\n  harakiri: 30\n",
		"app.json":  `{"uwsgi": {"buffer-size": 32768}}`,
		"tmpl.ini":  "[uwsgi]\nprocesses = 1\nuid = www\n",
		"defs.yaml": "uwsgi:\n  vacuum: true\n",
	})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"flags values and equals", []string{"--master", "--processes=4", "--socket", ":3031", "--vacuum"},
			"master= processes=4 socket=:3031 vacuum="},
		{"value may start with a single dash", []string{"--env", "-e", "--py-opt", "-O"}, "env=-e py-opt=-O"},
		{"a short option is not a value", []string{"--vacuum", "-M", "--x", "-ML"}, "vacuum= master= x= master= disable-logging="},
		{"negative number is a value", []string{"--reload-mercy", "-1"}, "reload-mercy=-1"},
		{"required value taken whatever it is", []string{"--socket", "--weird", "--ini=" + p("app.ini") + ":zerg"}, "socket=--weird zerg=z"},
		{"flag kinds known", []string{"--master", p("app.ini"), "--if-reload", "--endif", "--x"}, "master= x= socket=/run/app.sock processes=4"},
		{"optional value only with equals; [ args skipped", []string{"--chmod-socket", "--chmod=660", "--endfor", "[x]", "-C", "-C664"}, "chmod-socket= chmod=660 chmod-socket= chmod-socket=664"},
		{"equals keeps the rest", []string{"--env=A=1"}, "env=A=1"},
		{"set", []string{"--set", "processes=2", "--set=foo=bar=baz", "--set", "empty="}, "processes=2 foo=bar=baz empty="},
		{"files in argv order", []string{"--set", "a=1", "--ini", p("app.ini"), "--xml=" + p("app.xml"), "--b", "2",
			"--yaml", p("app.yaml"), "--json", p("app.json")},
			"a=1 socket=/run/app.sock processes=4 threads=2 b=2 harakiri=30 buffer-size=32768"},
		{"aliases", []string{"--yml", p("app.yaml"), "--js", p("app.json")}, "harakiri=30 buffer-size=32768"},
		{"section", []string{"--ini", p("app.ini") + ":zerg"}, "zerg=z"},
		{"include by suffix", []string{"--include", p("defs.yaml"), "--x", "1"}, "vacuum=true x=1"},
		{"inherit is deferred and goes first", []string{"--set", "a=1", "--inherit", p("tmpl.ini"), "--ini", p("app.ini"), "--processes", "8"},
			"processes=1 uid=www a=1 socket=/run/app.sock processes=4 processes=8"},
		{"set can include, as in uWSGI", []string{"--set", "yaml=" + p("app.yaml")}, "harakiri=30"},
		{"empty", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLoader()
			c, err := l.Args(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(keyvals(c), " "); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			for _, o := range c.Options {
				if o.Key == "a" || o.Key == "b" || o.Key == "x" || o.Key == "master" {
					if o.File != "" || o.Line != 0 {
						t.Errorf("argv option %s has %s:%d", o.Key, o.File, o.Line)
					}
				}
			}
		})
	}
}

func TestArgsErrors(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{"bad.ini": "[uwsgi]\ninclude = nowhere.conf\n"})
	tests := []struct {
		name string
		args []string
		want []string
		key  string
	}{
		{"stray positional", []string{"--master=1", "oops"}, []string{`command line: oops: cannot load configuration from "oops"`}, "oops"},
		{"leading positional", []string{"app.ini"}, []string{"command line: include: cannot read app.ini"}, "include"},
		{"unknown short option", []string{"-MLw", "app"}, []string{"command line: -w: unknown short option"}, "-w"},
		{"short option without value", []string{"-Ms"}, []string{"command line: -s: needs a value (-s is --socket)"}, "-s"},
		{"long option without value", []string{"--master", "--socket"}, []string{"command line: socket: needs a value"}, "socket"},
		{"bare after double dash", []string{"--", "-M"}, []string{`command line: -M: cannot load configuration from "-M"`}, "-M"},
		{"option without name", []string{"--=x"}, []string{"--=x: option without a name"}, "--=x"},
		{"set without equals", []string{"--set", "foo"}, []string{`command line: set: "foo" is not KEY=VALUE`}, "set"},
		{"set without key", []string{"--set", "=v"}, []string{`set: "=v" is not KEY=VALUE`}, "set"},
		{"bare ini", []string{"--ini"}, []string{"command line: ini: needs a value"}, "ini"},
		{"empty ini", []string{"--ini="}, []string{"command line: ini: no config file named"}, "ini"},
		{"missing file", []string{"--ini", filepath.Join(dir, "nope.ini")}, []string{"command line: ini: cannot read", "no such file"}, "ini"},
		{"include without suffix", []string{"--include", "defaults"}, []string{`command line: include: cannot tell the format of "defaults"`}, "include"},
		{"error inside a file", []string{"--ini", filepath.Join(dir, "bad.ini")}, []string{filepath.Join(dir, "bad.ini") + ":2: include:"}, "include"},
		{"emperor without channel", []string{"--ini", "emperor://app.ini"}, []string{"emperor://app.ini: not a vassal of an emperor with a config channel"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLoader()
			c, err := l.Args(tc.args)
			if c != nil {
				t.Errorf("config returned with error")
			}
			ce := wantError(t, err, tc.want...)
			if ce.Key != tc.key {
				t.Errorf("Key = %q, want %q", ce.Key, tc.key)
			}
		})
	}
}

func TestArgsEmperor(t *testing.T) {
	l, _ := newLoader()
	var asked []string
	l.Emperor = func(name string) ([]byte, error) {
		asked = append(asked, name)
		switch name {
		case "app.ini":
			return []byte("[uwsgi]\nname = %o\nn = [%n]\n[zerg]\nzerg = yes\n"), nil
		case "app.json":
			return []byte(`{"uwsgi": {"j": true}}`), nil
		}
		return nil, errors.New("unknown vassal")
	}
	c, err := l.Args([]string{"--ini", "emperor://app.ini", "--ini", "emperor://app.ini:zerg", "--json=emperor://app.json"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keyvals(c), " "); got != "name=emperor://app.ini n=[] zerg=yes j=1" {
		t.Errorf("got %s", got)
	}
	if o := c.Lookup("name")[0]; o.File != "emperor://app.ini" || o.Line != 2 {
		t.Errorf("name at %s:%d", o.File, o.Line)
	}
	if strings.Join(asked, ",") != "app.ini,app.ini,app.json" {
		t.Errorf("asked %q", asked)
	}
	_, err = l.Args([]string{"--ini", "emperor://other.ini"})
	wantError(t, err, "command line: ini: cannot read emperor://other.ini: unknown vassal")
}
