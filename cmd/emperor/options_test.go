package main

import (
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/amqp"
	"github.com/emperor-dev/emperor/monitor/push"
)

// The monitors' own options come from the registry: each is in --help,
// none shadows one of the Emperor's, and a bad value is refused as before.
func TestMonitorOptionsFromTheRegistry(t *testing.T) {
	s := &settings{monitors: monitor.NewSettings()}
	core := map[string]bool{}
	for _, o := range s.coreOptions() {
		core[o.Name] = true
	}
	help := s.usage()
	mons := s.monitors.Options()
	if len(mons) == 0 {
		t.Fatal("no monitor registered an option")
	}
	for _, o := range mons {
		if core[o.Name] {
			t.Errorf("monitor option %s shadows the Emperor's own", o.Name)
		}
		if !strings.Contains(help, "--"+o.Name+" ") {
			t.Errorf("--help lacks --%s", o.Name)
		}
	}
	for _, scheme := range monitor.Schemes() {
		if !strings.Contains(help, scheme+"://") {
			t.Errorf("--help of --emperor lacks %s://", scheme)
		}
	}
	got, err := parseSettings([]string{"--emperor-amqp-exchange", "fleet", "--emperor-push-allowed-dir", "/srv/a",
		"--emperor-push-allowed-dir", "/srv/b", "--emperor-state-dir", "/var/lib/emperor"})
	if err != nil {
		t.Fatal(err)
	}
	a, z := got.monitors["amqp"].(*amqp.Settings), got.monitors["zmq"].(*push.Settings)
	if a.Exchange != "fleet" || strings.Join(a.Push.AllowedDirs, " ") != "/srv/a /srv/b" || a.Push.StateDir != "/var/lib/emperor" ||
		strings.Join(z.AllowedDirs, " ") != "/srv/a /srv/b" || z.StateDir != "/var/lib/emperor" {
		t.Errorf("amqp %+v, zmq %+v", a, z)
	}
	_, err = parseSettings([]string{"--emperor-push-fetch-timeout", "soon"})
	if err == nil || err.Error() != `command line: emperor-push-fetch-timeout: "soon" is not a non-negative integer` {
		t.Errorf("bad value: %v", err)
	}
}

// emperor-cgroup is auto unless set; a limit needs a cgroup, so false with
// a limit is refused rather than silently ignored.
func TestEmperorCgroupAutoTrueFalse(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" auto, "on", "off", "error"
	}{
		{nil, ""},
		{[]string{"--emperor-cgroup", "auto"}, ""},
		{[]string{"--emperor-cgroup", "true"}, "on"},
		{[]string{"--emperor-cgroup", "false"}, "off"},
		{[]string{"--emperor-cgroup", "sometimes"}, "error"},
		{[]string{"--emperor-cgroup-memory", "64M"}, "on"},
		{[]string{"--emperor-cgroup", "false", "--emperor-cgroup-pids", "10"}, "error"},
	} {
		s, err := parseSettings(c.args)
		var iso *isolation
		if err == nil {
			iso, err = isolationOptions(s)
		}
		switch {
		case c.want == "error":
			if err == nil {
				t.Errorf("%q: accepted, want an error", c.args)
			}
		case err != nil:
			t.Errorf("%q: %v", c.args, err)
		case iso.cgroup != c.want:
			t.Errorf("%q: emperor-cgroup %q, want %q", c.args, iso.cgroup, c.want)
		}
	}
}
