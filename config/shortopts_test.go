package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

// TestArgsShortOptions: uWSGI's short options, alone, with attached or
// separate values and in clusters, as getopt reads them (FreeBSD's rc
// script runs "uwsgi -M -L -d FILE ...").
func TestArgsShortOptions(t *testing.T) {
	dir := tempDir(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	writeFiles(t, dir, map[string]string{
		"e.xml":  "<uwsgi><x>1</x></uwsgi>",
		"e.yaml": "uwsgi:\n  y: 1\n",
		"e.json": `{"uwsgi": {"j": 1}}`,
	})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"freebsd rc script", []string{"-M", "-L", "-d", "/var/log/uwsgi.log", "--emperor", "/usr/local/etc/uwsgi/vassals"},
			"master= disable-logging= daemonize=/var/log/uwsgi.log emperor=/usr/local/etc/uwsgi/vassals"},
		{"cluster of flags", []string{"-ML"}, "master= disable-logging="},
		{"cluster ending in a valued option", []string{"-MLs", ":3031"}, "master= disable-logging= socket=:3031"},
		{"attached value", []string{"-p2", "-d/tmp/x.log", "-Sk=v"}, "processes=2 daemonize=/tmp/x.log k=v"},
		{"value that starts with a dash", []string{"-s", "-weird"}, "socket=-weird"},
		{"value taken from the cluster", []string{"-MsL"}, "master= socket=L"},
		{"optional value", []string{"-C", "-C664"}, "chmod-socket= chmod-socket=664"},
		{"every flag letter", []string{"-mcaTiMhrL"},
			"memory-report= cgi-mode= abstract-socket= enable-threads= single-interpreter= master= help= reaper= disable-logging="},
		{"every valued letter", []string{"-s", "a", "-p", "2", "-t", "30", "-l", "64", "-v", "8", "-b", "4096", "-R", "100", "-z", "4", "-A", "10", "-Q", "/spool"},
			"socket=a processes=2 harakiri=30 listen=64 max-vars=8 buffer-size=4096 max-requests=100 socket-timeout=4 sharedarea=10 spooler=/spool"},
		{"config loaders", []string{"-x", p("e.xml"), "-y", p("e.yaml"), "-j", p("e.json")}, "x=1 y=1 j=1"},
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
		})
	}
}

func TestShortOptionsTable(t *testing.T) {
	got := map[byte]config.ShortOption{}
	for _, s := range config.ShortOptions() {
		got[s.Letter] = s
	}
	// uWSGI 2.0.21's core letters, from "uwsgi --help".
	if len(got) != 25 {
		t.Errorf("%d short options, want 25", len(got))
	}
	for letter, want := range map[byte]string{'M': "master", 'L': "disable-logging", 'd': "daemonize", 's': "socket",
		'p': "processes", 'x': "xmlconfig", 'S': "set", 'h': "help", 'Q': "spooler"} {
		if got[letter].Name != want {
			t.Errorf("-%c is %q, want %q", letter, got[letter].Name, want)
		}
	}
}

// TestArgsBareConfigFiles: "uwsgi app.ini" loads app.ini by its suffix,
// after every option, as getopt permutes the arguments.
func TestArgsBareConfigFiles(t *testing.T) {
	dir := tempDir(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	writeFiles(t, dir, map[string]string{
		"app.ini":  "[uwsgi]\nn = %n\n",
		"b.yml":    "uwsgi:\n  b: 1\n",
		"c.js":     `{"uwsgi": {"c": 1}}`,
		"-odd.ini": "[uwsgi]\nodd = 1\n",
	})
	t.Chdir(dir)
	l, _ := newLoader()
	l.Env.Cwd = dir
	c, err := l.Args([]string{p("app.ini"), "--x", "1", p("b.yml"), "-M", p("c.js"), "--", "-odd.ini"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(keyvals(c), " "), "x=1 master= n=app b=1 c=1 odd=1"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
