package uwsgiopts_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/uwsgiopts"
)

const uwsgi = "/usr/bin/uwsgi"

// The committed catalogue is what the installed uWSGI says today: run go
// generate ./internal/uwsgiopts when this fails on a new uwsgi.
func TestCatalogueMatchesInstalledUWSGI(t *testing.T) {
	if _, err := os.Stat(uwsgi); err != nil {
		testenv.Missing(t, "regenerating the uWSGI option catalogue needs "+uwsgi+" (Debian: uwsgi-core): "+err.Error())
	}
	opts, version, err := uwsgiopts.Probe(context.Background(), uwsgi, uwsgiopts.Plugins)
	if errors.Is(err, uwsgiopts.ErrPluginMissing) {
		testenv.Missing(t, "regenerating the uWSGI option catalogue needs Debian's uwsgi plugins: "+err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "2.0.") {
		t.Fatalf("installed uwsgi is %s; the catalogue describes uWSGI 2.0", version)
	}
	got, err := uwsgiopts.Render(opts, version)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("catalogue.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("catalogue.go differs from %s %s at line %d:\n committed: %s\n installed: %s\nrun: go generate ./internal/uwsgiopts", uwsgi, version, i+1, w, g)
			}
		}
	}
}

func TestLookup(t *testing.T) {
	for _, c := range []struct {
		name   string
		arg    uwsgiopts.Arg
		short  byte
		plugin string
	}{
		{"master", uwsgiopts.NoArg, 'M', ""},
		{"workers", uwsgiopts.Required, 'p', ""},
		{"socket", uwsgiopts.Required, 's', ""},
		{"log-date", uwsgiopts.Optional, 0, ""},
		{"strict", uwsgiopts.NoArg, 0, ""},
		{"emperor-tyrant", uwsgiopts.NoArg, 0, ""},
		{"logfile-chown", uwsgiopts.NoArg, 0, ""},
		{"http", uwsgiopts.Required, 0, "http"},
		{"fastrouter-subscription-server", uwsgiopts.Required, 0, "fastrouter"},
		{"virtualenv", uwsgiopts.Required, 'H', "python3"},
	} {
		o, ok := uwsgiopts.Lookup(c.name)
		if !ok {
			t.Errorf("%s: not a uWSGI option", c.name)
			continue
		}
		if o.Arg != c.arg || o.Short != c.short || o.Plugin != c.plugin {
			t.Errorf("%s: %+v, want arg %v short %q plugin %q", c.name, o, c.arg, c.short, c.plugin)
		}
	}
	for _, name := range []string{"strict-mode", "emperor-wait-for-command", "emperor-use-fork-server", "", "--master"} {
		if _, ok := uwsgiopts.Lookup(name); ok {
			t.Errorf("%q: uWSGI 2.0.21 has no such option", name)
		}
	}
	if v := uwsgiopts.Version(); !strings.HasPrefix(v, "2.0.21") {
		t.Errorf("Version() = %q", v)
	}
}
