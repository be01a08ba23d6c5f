package monitor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

func TestIsVassalName(t *testing.T) {
	for name, want := range map[string]bool{
		"app.ini": true, "app.xml": true, "app.yml": true, "app.yaml": true, "app.json": true, "app.js": true,
		"app.INI": false, "app.skel": false, "app": false, "app.conf": true, ".ini": true,
		strings.Repeat("a", 251) + ".ini": false,
	} {
		if got := IsVassalName(name, []string{"conf"}); got != want {
			t.Errorf("IsVassalName(%q) = %v, want %v", name, got, want)
		}
	}
	if f := ConfigFlag("app.conf", []string{".conf"}); f != "--config" {
		t.Errorf("extra extension flag %q", f)
	}
	if f := ConfigFlag("app", nil); f != "--inherit" {
		t.Errorf("no extension flag %q", f)
	}
}

func TestChooseAsUWSGI(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.ini"), nil, 0o644)
	// Register fake factories for the test's schemes.
	for _, s := range []string{"dir", "glob"} {
		if _, ok := registry[s]; !ok {
			registry[s] = Scheme{Name: s}
			defer delete(registry, s)
		}
	}
	cases := []struct{ value, scheme, arg string }{
		{"dir://" + dir, "dir", dir},
		{"glob://" + dir + "/*.ini", "glob", dir + "/*.ini"},
		{dir, "dir", dir},
		{dir + "/*.ini", "glob", dir + "/*.ini"},
		{dir + "/a.ini", "glob", dir + "/a.ini"},
		{dir + "/missing", "glob", dir + "/missing"},
		{"[", "dir", "["},
	}
	for _, c := range cases {
		s, a, err := Choose(c.value)
		if err != nil || s != c.scheme || a != c.arg {
			t.Errorf("Choose(%q) = %q, %q, %v; want %q, %q", c.value, s, a, err, c.scheme, c.arg)
		}
	}
	if _, _, err := Choose("nosuch://x"); err == nil || !strings.Contains(err.Error(), "unknown monitor scheme") {
		t.Errorf("unknown scheme: %v", err)
	}
}

func FuzzChoose(f *testing.F) {
	for _, s := range []string{"dir:///etc/vassals", "glob:///opt/apps/app*/app*.*", "/etc/uwsgi/vassals", "pg://host=x;SELECT 1", "[", "a://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		scheme, arg, err := Choose(v)
		if err == nil && scheme == "" {
			t.Fatalf("Choose(%q) = no scheme, %q", v, arg)
		}
	})
}

// fakeSettings are a test scheme's own settings: one option of its own and
// one it shares with every other fake scheme.
type fakeSettings struct {
	own    string
	shared int
}

func (s *fakeSettings) Options() []config.Setting {
	return []config.Setting{
		config.StringSetting("emperor-fake-own-"+s.own, "a fake scheme's own option", &s.own),
		config.IntSetting("emperor-fake-shared", "an option every fake scheme reads", &s.shared),
	}
}

// registerFake registers scheme for the test's duration (the registry is
// otherwise filled at init and frozen; only this package's tests undo a
// registration).
func registerFake(t *testing.T, scheme string) {
	t.Helper()
	Register(Scheme{Name: scheme, New: func(arg string, opts Options) (Monitor, error) {
		s, err := SettingsOf[*fakeSettings](opts, scheme)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("built with own=%s shared=%d", s.own, s.shared)
	}, Settings: func() Settings { return &fakeSettings{own: scheme} }})
	t.Cleanup(func() { delete(registry, scheme) })
}

// A scheme brings its options with it: they reach the Emperor through
// NewSettings, an option two schemes read appears once and sets both, and
// the factory gets the values through Options.Settings.
func TestSchemeSettings(t *testing.T) {
	registerFake(t, "fakea")
	registerFake(t, "fakeb")
	ss := NewSettings()
	byName := map[string]config.Setting{}
	for _, o := range ss.Options() {
		if _, dup := byName[o.Name]; dup {
			t.Errorf("option %s listed twice", o.Name)
		}
		byName[o.Name] = o
	}
	for _, name := range []string{"emperor-fake-own-fakea", "emperor-fake-own-fakeb", "emperor-fake-shared"} {
		if _, ok := byName[name]; !ok {
			t.Fatalf("option %s missing from %v", name, byName)
		}
	}
	if err := byName["emperor-fake-shared"].Set("7"); err != nil {
		t.Fatal(err)
	}
	if err := byName["emperor-fake-own-fakea"].Set("x"); err != nil {
		t.Fatal(err)
	}
	if err := byName["emperor-fake-shared"].Set("many"); err == nil || err.Error() != `"many" is not an integer` {
		t.Errorf("bad value: %v", err)
	}
	for value, want := range map[string]string{
		"fakea://": "built with own=x shared=7",
		"fakeb://": "built with own=fakeb shared=7",
	} {
		if _, err := Open(value, Options{Settings: ss}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want %q", value, err, want)
		}
	}
	// Without settings, a scheme runs with its defaults.
	if _, err := Open("fakea://", Options{}); err == nil || !strings.Contains(err.Error(), "own=fakea shared=0") {
		t.Errorf("defaults: %v", err)
	}
	// Settings of the wrong type are an error, not a panic.
	if _, err := Open("fakea://", Options{Settings: SchemeSettings{"fakea": otherMeaning{}}}); err == nil ||
		!strings.Contains(err.Error(), "want a *monitor.fakeSettings") {
		t.Errorf("settings of the wrong type: %v", err)
	}
}

// Two schemes giving one option two meanings is a programming error that
// Register refuses at init.
func TestRegisterRefusesOneOptionTwoMeanings(t *testing.T) {
	registerFake(t, "fakec")
	defer func() {
		if recover() == nil {
			t.Error("Register accepted a second help for emperor-fake-shared")
		}
		delete(registry, "faked")
	}()
	Register(Scheme{Name: "faked", New: func(string, Options) (Monitor, error) { return nil, nil },
		Settings: func() Settings { return otherMeaning{} }})
}

type otherMeaning struct{}

func (otherMeaning) Options() []config.Setting {
	return []config.Setting{config.IntSetting("emperor-fake-shared", "something else", new(int))}
}
