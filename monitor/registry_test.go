package monitor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
