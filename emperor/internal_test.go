package emperor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/monitor"
)

func TestTransitionTable(t *testing.T) {
	// Every state but Absent can be reached, and every state can be left.
	reached := map[State]bool{}
	for from := State(0); from < numStates; from++ {
		if len(allowed[from]) == 0 {
			t.Errorf("%s has no way out", from)
		}
		for _, to := range allowed[from] {
			reached[to] = true
			if to == from {
				t.Errorf("%s → %s: self transitions are not state changes", from, to)
			}
		}
	}
	for s := State(0); s < numStates; s++ {
		if !reached[s] {
			t.Errorf("%s is unreachable", s)
		}
	}
	cases := []struct {
		from, to State
		ok       bool
	}{
		{Absent, Waiting, true},
		{Absent, Running, false}, // everything spawns through the spawner
		{Waiting, Spawning, true},
		{Running, Absent, false}, // a live process is never forgotten
		{Stopping, Running, false},
		{Cursed, Waiting, true},
		{Disabled, Spawning, false},
		{Disabled, Waiting, true},
	}
	for _, c := range cases {
		if got := canTransition(c.from, c.to); got != c.ok {
			t.Errorf("canTransition(%s, %s) = %v, want %v", c.from, c.to, got, c.ok)
		}
	}
	d := StateDiagram()
	if !strings.Contains(d, "running -> cursed;") || !strings.HasPrefix(d, "digraph") {
		t.Errorf("diagram misses transitions:\n%s", d)
	}
}

func TestRespawnDelay(t *testing.T) {
	s := time.Second
	cases := []struct {
		deaths int
		want   time.Duration
	}{
		{0, 0}, {1, 0}, {2, s}, {3, 2 * s}, {181, 180 * s}, {1000, 180 * s}, {1 << 62, 180 * s},
	}
	for _, c := range cases {
		if got := respawnDelay(c.deaths, s, 180*s, false); got != c.want {
			t.Errorf("respawnDelay(%d) = %s, want %s", c.deaths, got, c.want)
		}
	}
	if got := respawnDelay(10, s, 180*s, true); got != 0 {
		t.Errorf("disabled blacklist still delays: %s", got)
	}
}

func TestVassalArgvIsUWSGIs(t *testing.T) {
	o := &Options{
		Binary:          "/usr/bin/uwsgi",
		InheritBefore:   []string{"ib.ini"},
		IncludeBefore:   []string{"cb.ini"},
		VassalSet:       []string{"a=1", "b=2"},
		Inherit:         []string{"i.ini"},
		Include:         []string{"c.ini"},
		ExtraExtensions: []string{"conf"},
	}
	cases := []struct {
		ev   monitor.Event
		want []string
	}{
		{monitor.Event{Key: monitor.Key{Name: "app.ini"}, Path: "/v/app.ini"},
			[]string{"/usr/bin/uwsgi", "--inherit", "ib.ini", "--include", "cb.ini", "--set", "a=1", "--set", "b=2", "--ini", "app.ini", "--inherit", "i.ini", "--include", "c.ini"}},
		{monitor.Event{Key: monitor.Key{Name: "apps/x/app.yml"}, Path: "/v/apps/x/app.yml"}, nil},
		{monitor.Event{Key: monitor.Key{Name: "db.xml"}, Config: []byte("<uwsgi/>")}, nil},
		{monitor.Event{Key: monitor.Key{Name: "site.conf"}, Path: "/v/site.conf"}, nil},
	}
	flags := []string{"--ini", "--yaml", "--xml", "--config"}
	names := []string{"app.ini", "app.yml", "emperor://db.xml", "site.conf"}
	for i, c := range cases {
		got := vassalArgv(o, &c.ev)
		if c.want != nil && !slices.Equal(got, c.want) {
			t.Errorf("argv = %q\nwant   %q", got, c.want)
		}
		mid := slices.Index(got, flags[i])
		if mid < 0 || got[mid+1] != names[i] {
			t.Errorf("%s: argv %q lacks %s %s", c.ev.Key.Name, got, flags[i], names[i])
		}
	}
}

func TestVassalEnv(t *testing.T) {
	in := []string{
		"PATH=/bin", "UWSGI_SOCKET=old", "UWSGI_VASSAL_SOCKET=new", "UWSGI_RELOADS=2",
		"NOTIFY_SOCKET=/run/notify", "UWSGI_EMPEROR=/etc/vassals", "UWSGI_EMPEROR_FD=7",
		"UWSGI_EMPEROR_FD_CONFIG=8", "UWSGI_VASSALS_DIR=/x", "UWSGI_MASTER=1", "UWSGI_VASSAL_=odd",
	}
	got := vassalEnv(in)
	want := []string{"PATH=/bin", "UWSGI_MASTER=1", "UWSGI_VASSAL_=odd", "UWSGI_SOCKET=new"}
	if !slices.Equal(got, want) {
		t.Errorf("vassalEnv =\n%q\nwant\n%q", got, want)
	}
}
