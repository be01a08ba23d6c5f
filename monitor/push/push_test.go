package push_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/push"
)

func TestRules_Resolve(t *testing.T) {
	allowed, outside := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(outside, "evil.ini"), nil, 0o644)
	// A symlink inside the allowed directory to a file outside it.
	os.Symlink(filepath.Join(outside, "evil.ini"), filepath.Join(allowed, "link.ini"))
	r, err := push.NewRules(monitor.Options{}, push.Settings{AllowedDirs: []string{allowed}, NamePattern: `[a-z]+\.(ini|xml)`})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in, want, err string
	}{
		{filepath.Join(allowed, "app.ini"), filepath.Join(allowed, "app.ini"), ""},
		{"app.xml", filepath.Join(allowed, "app.xml"), ""},
		{filepath.Join(allowed, "sub", "app.ini"), filepath.Join(allowed, "sub", "app.ini"), ""},
		{filepath.Join(outside, "evil.ini"), "", "outside every emperor-push-allowed-dir"},
		{filepath.Join(allowed, "..", filepath.Base(outside), "evil.ini"), "", "outside"},
		{filepath.Join(allowed, "link.ini"), "", "outside"},
		{filepath.Join(allowed, "app.txt"), "", "not a vassal config name"},
		{filepath.Join(allowed, "App1.ini"), "", "does not match emperor-push-name-pattern"},
	} {
		got, err := r.Resolve(c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("Resolve(%q) = %q, %v; want %q", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("Resolve(%q) error %v, want one with %q", c.in, err, c.err)
		}
	}
	if _, err := push.NewRules(monitor.Options{}, push.Settings{NamePattern: "("}); err == nil {
		t.Error("a bad name pattern accepted")
	}
}

func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"app.ini", "/etc/vassals/mydjangoapp.xml", "http://example.com/confs/trac.ini", "mydomain_trac_config.ini", "\x00.ini"} {
		f.Add(s)
	}
	r, _ := push.NewRules(monitor.Options{}, push.Settings{})
	f.Fuzz(func(t *testing.T, s string) {
		if r.CheckInlineName(s) == nil && (strings.Contains(s, "/") || len(s) > monitor.MaxNameLen) {
			t.Fatalf("accepted %q", s)
		}
	})
}
