package main

import (
	"slices"
	"strings"
	"testing"
)

// TestParseSettingsEnviron: UWSGI_EMPEROR=/etc/vassals emperor works, as in
// uWSGI, and the command line comes after the environment.
func TestParseSettingsEnviron(t *testing.T) {
	t.Setenv("UWSGI_EMPEROR", "/srv/vassals")
	t.Setenv("UWSGI_EMPEROR_FREQ", "4")
	t.Setenv("UWSGI_VASSAL_SOCKET", "/run/%n.sock") // for the vassals, not an Emperor option
	s, err := parseSettings([]string{"--glob", "/y/*.ini", "--emperor-freq", "6"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/srv/vassals", "glob:///y/*.ini"}; !slices.Equal(s.emperors, want) {
		t.Errorf("emperors = %q, want %q", s.emperors, want)
	}
	if s.freq.Seconds() != 6 {
		t.Errorf("freq = %s, want the command line's 6s", s.freq)
	}

	t.Setenv("UWSGI_EMPEROR_FREQ", "soon")
	_, err = parseSettings(nil)
	if err == nil || !strings.Contains(err.Error(), "$UWSGI_EMPEROR_FREQ: emperor-freq:") {
		t.Errorf("error %v, want one naming $UWSGI_EMPEROR_FREQ", err)
	}
}

// TestVassalEnvironStripsEmperorOptions: bug B27. The UWSGI_* variables the
// Emperor read as its own options do not reach the vassals (uWSGI passes
// them on, and UWSGI_EMPEROR makes every vassal a sub-Emperor: a fork
// bomb); UWSGI_VASSAL_* and the protocol's variables are left for the
// spawn to rewrite.
func TestVassalEnvironStripsEmperorOptions(t *testing.T) {
	t.Setenv("UWSGI_EMPEROR", "/srv/vassals")
	t.Setenv("UWSGI_MASTER", "1")
	t.Setenv("UWSGI_VASSAL_SOCKET", "/run/x.sock")
	t.Setenv("UWSGI_RELOADS", "2")
	t.Setenv("KEEP_ME", "1")
	env := vassalEnviron()
	for _, kv := range []string{"UWSGI_VASSAL_SOCKET=/run/x.sock", "UWSGI_RELOADS=2", "KEEP_ME=1"} {
		if !slices.Contains(env, kv) {
			t.Errorf("%s missing from %q", kv, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "UWSGI_EMPEROR=") || strings.HasPrefix(kv, "UWSGI_MASTER=") {
			t.Errorf("%s passed on to vassals", kv)
		}
	}
	got := withoutEmperorOptions([]string{"A=1", "UWSGI_SOCKET=x", "UWSGI_EMPEROR_FD=3", "UWSGI_VASSAL_INI=v.ini", "UWSGI_EMPEROR_TYRANT=1"})
	if want := []string{"A=1", "UWSGI_EMPEROR_FD=3", "UWSGI_VASSAL_INI=v.ini"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
