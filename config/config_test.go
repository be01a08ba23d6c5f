package config_test

import (
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

func TestAccessors(t *testing.T) {
	c := &config.Config{Options: []config.Option{
		{Key: "env", Value: "A=1", File: "app.ini", Line: 2},
		{Key: "master", Value: "", File: "app.ini", Line: 3},
		{Key: "env", Value: "B=2", File: "base.ini", Line: 7},
		{Key: "processes", Value: "4", File: "app.ini", Line: 5},
	}}
	if v, ok := c.Get("env"); !ok || v != "B=2" {
		t.Errorf("Get(env) = %q, %v", v, ok)
	}
	if v, ok := c.Get("nope"); ok || v != "" {
		t.Errorf("Get(nope) = %q, %v", v, ok)
	}
	if got := c.All("env"); !reflect.DeepEqual(got, []string{"A=1", "B=2"}) {
		t.Errorf("All(env) = %q", got)
	}
	if got := c.All("nope"); got != nil {
		t.Errorf("All(nope) = %q", got)
	}
	if got := c.Lookup("env"); len(got) != 2 || got[1].File != "base.ini" || got[1].Line != 7 {
		t.Errorf("Lookup(env) = %v", got)
	}
	var nilc *config.Config
	if _, ok := nilc.Get("x"); ok || nilc.All("x") != nil || nilc.Lookup("x") != nil {
		t.Error("nil config is not empty")
	}
	if b, err := nilc.Bool("x"); b || err != nil {
		t.Error("nil config Bool")
	}
}

func TestBool(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    bool
		wantErr bool
	}{
		{"", true, false}, {"1", true, false}, {"true", true, false}, {"yes", true, false}, {"on", true, false},
		{"y", true, false}, {"t", true, false}, {"TRUE", true, false}, {"Yes", true, false},
		{"0", false, false}, {"false", false, false}, {"no", false, false}, {"off", false, false},
		{"n", false, false}, {"f", false, false}, {"Off", false, false},
		{"2", false, true}, {"maybe", false, true},
	} {
		c := &config.Config{Options: []config.Option{{Key: "x", Value: "1", File: "a.ini", Line: 1}, {Key: "x", Value: tc.value, File: "app.ini", Line: 9}}}
		got, err := c.Bool("x")
		if tc.wantErr {
			ce := wantError(t, err, "app.ini:9: x: "+strconv.Quote(tc.value)+" is not a boolean")
			if ce.File != "app.ini" || ce.Line != 9 || ce.Key != "x" {
				t.Errorf("error fields %+v", ce)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Bool(%q) = %v, %v; want %v", tc.value, got, err, tc.want)
		}
	}
	if got, err := (&config.Config{}).Bool("absent"); got || err != nil {
		t.Errorf("absent: %v %v", got, err)
	}
}

func TestInt(t *testing.T) {
	c := &config.Config{Options: []config.Option{
		{Key: "n", Value: "42", File: "app.ini", Line: 2},
		{Key: "neg", Value: " -3 ", File: "app.ini", Line: 3},
		{Key: "bad", Value: "4k", File: "app.ini", Line: 4},
		{Key: "flag", Value: "", File: "", Line: 0},
	}}
	if n, err := c.Int("n", 1); n != 42 || err != nil {
		t.Errorf("n = %d, %v", n, err)
	}
	if n, err := c.Int("neg", 1); n != -3 || err != nil {
		t.Errorf("neg = %d, %v", n, err)
	}
	if n, err := c.Int("absent", 7); n != 7 || err != nil {
		t.Errorf("absent = %d, %v", n, err)
	}
	_, err := c.Int("bad", 1)
	wantError(t, err, `app.ini:4: bad: "4k" is not an integer`)
	var ne *strconv.NumError
	if !errors.As(err, &ne) {
		t.Errorf("Int error does not wrap *strconv.NumError")
	}
	_, err = c.Int("flag", 1)
	wantError(t, err, `command line: flag: "" is not an integer`)
}

func TestErrorFormat(t *testing.T) {
	cause := errors.New("bad value")
	for _, tc := range []struct {
		err  *config.Error
		want string
	}{
		{&config.Error{File: "app.ini", Line: 12, Key: "socket", Err: cause, Hint: "hint"}, "app.ini:12: socket: bad value (hint)"},
		{&config.Error{File: "app.ini", Err: cause}, "app.ini: bad value"},
		{&config.Error{Key: "x", Err: cause}, "command line: x: bad value"},
		{&config.Error{File: "a.ini", Line: 1}, "a.ini:1: invalid configuration"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if !errors.Is(&config.Error{Err: cause}, cause) {
		t.Error("Unwrap")
	}
}

func TestFormat(t *testing.T) {
	for f, s := range map[config.Format]string{config.INI: "ini", config.XML: "xml", config.YAML: "yaml", config.JSON: "json", 0: "Format(0)", 9: "Format(9)"} {
		if f.String() != s {
			t.Errorf("%d.String() = %q", f, f.String())
		}
	}
	for name, want := range map[string]config.Format{
		"app.ini": config.INI, "/etc/app.ini:zerg": config.INI, "a.xml": config.XML, "a.yml": config.YAML, "a.yaml:x": config.YAML,
		"a.js": config.JSON, "a.json": config.JSON, "emperor://app.json": config.JSON, "a.INI": 0, "a.conf": 0, "app.ini.bak": 0,
		"http://host:8080/app.ini": config.INI,
	} {
		got, ok := config.FormatOf(name)
		if got != want || ok != (want != 0) {
			t.Errorf("FormatOf(%q) = %v, %v", name, got, ok)
		}
	}
	for flag, want := range map[string]config.Format{
		"ini": config.INI, "--ini": config.INI, "xml": config.XML, "--yaml": config.YAML, "yml": config.YAML,
		"json": config.JSON, "--js": config.JSON, "include": 0, "INI": 0, "": 0,
	} {
		got, ok := config.FormatFlag(flag)
		if got != want || ok != (want != 0) {
			t.Errorf("FormatFlag(%q) = %v, %v", flag, got, ok)
		}
	}
}

func TestSplitSection(t *testing.T) {
	for _, tc := range []struct{ in, file, section string }{
		{"app.ini", "app.ini", ""},
		{"app.ini:zerg", "app.ini", "zerg"},
		{"/etc/a:b/app.ini:zerg", "/etc/a:b/app.ini", "zerg"},
		{"/etc/a:b/app.ini", "/etc/a", "b/app.ini"},
		{":zerg", "", "zerg"},
		{"app.ini:", "app.ini", ""},
		{"emperor://app.ini", "emperor://app.ini", ""},
		{"emperor://app.ini:zerg", "emperor://app.ini", "zerg"},
		{"http://host:8080/app.ini", "http://host:8080/app.ini", ""},
		{"http://host:8080/app.ini:sect", "http://host:8080/app.ini", "sect"},
		{"exec://generate-config", "exec://generate-config", ""},
		{"exec://gen:x", "exec://gen", "x"},
		{"", "", ""},
	} {
		f, s := config.SplitSection(tc.in)
		if f != tc.file || s != tc.section {
			t.Errorf("SplitSection(%q) = %q, %q; want %q, %q", tc.in, f, s, tc.file, tc.section)
		}
	}
}
