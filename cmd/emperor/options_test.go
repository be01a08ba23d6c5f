package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/internal/uwsgiopts"
	"github.com/emperor-dev/emperor/namespaces"

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

// writeINI writes an emperor.ini in a temp dir and returns its path.
func writeINI(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "emperor.ini")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// noticeAt finds the notice about key, or fails.
func noticeAt(t *testing.T, s *settings, key string) notice {
	t.Helper()
	for _, n := range s.notices {
		if n.opt.Key == key {
			return n
		}
	}
	t.Fatalf("no notice about %s in %+v", key, s.notices)
	return notice{}
}

// Debian's own emperor.ini and friends: the uWSGI options that make the
// Emperor a server are accepted, each with one line naming file and line
// and pointing at the migration guide; other uWSGI options say why.
func TestUWSGIOptionsAreAcceptedWithAReason(t *testing.T) {
	ini := writeINI(t, `[uwsgi]
master = true
workers = 2
http-socket = :8080
fastrouter = 127.0.0.1:3017
route = ^/x break:403
plugins = python3
vacuum = true
emperor-broodlord = 40
emperor-use-fork-server = true
emperor = /etc/vassals
memory-report
`)
	s, err := parseSettings([]string{"--ini", ini})
	if err != nil {
		t.Fatal(err)
	}
	for line, key := range map[int]string{2: "master", 3: "workers", 4: "http-socket", 5: "fastrouter", 6: "route", 7: "plugins"} {
		n := noticeAt(t, s, key)
		if n.opt.File != ini || n.opt.Line != line || !n.warn || !strings.Contains(n.msg, "does not serve requests") ||
			!strings.Contains(n.why, "docs/migration.md") {
			t.Errorf("%s: %+v", key, n)
		}
	}
	if !s.life.vacuum { // acted on: it removes the pidfiles at exit (lifecycle.go)
		t.Error("vacuum = true did not set vacuum")
	}
	for _, key := range []string{"emperor-broodlord", "emperor-use-fork-server"} {
		if n := noticeAt(t, s, key); !strings.Contains(n.why, "not built") {
			t.Errorf("%s: %+v", key, n)
		}
	}
	noticeAt(t, s, "memory-report")
	if len(s.notices) != 9 { // every option but vacuum and emperor
		t.Errorf("%d notices, want one per option not acted on: %+v", len(s.notices), s.notices)
	}
	var log bytes.Buffer
	s.logNotices(slog.New(slog.NewTextHandler(&log, nil)))
	if got := strings.Count(log.String(), "\n"); got != 9 {
		t.Errorf("%d log lines, want 9:\n%s", got, log.String())
	}
	if !strings.Contains(log.String(), "option=workers file="+ini+" line=3") {
		t.Errorf("the workers line does not name file and line:\n%s", log.String())
	}
}

// Nothing uWSGI 2.0.21 accepts is refused: every option of the catalogue,
// from a config file and from the command line.
func TestEveryUWSGIOptionIsAccepted(t *testing.T) {
	table := (&settings{monitors: monitor.NewSettings()}).optionTable()
	var text strings.Builder
	text.WriteString("[uwsgi]\n")
	var args []string
	n := 0
	for _, o := range uwsgiopts.All() {
		if _, ours := table[o.Name]; ours || o.Name == "stats" || o.Name == "stats-server" {
			continue // acted on, with values of their own: tested one by one
		}
		if config.IsLogicKey(o.Name) {
			continue // config logic (if-*, for-*, end*): the loader's own keys
		}
		switch o.Name {
		case "ini", "xml", "yaml", "yml", "json", "js", "include", "inherit", "set", "config", "xmlconfig",
			"sqlite3", "sqlite", "ldap", "set-placeholder", "set-ph", "get", "declare-option", "declare-option2",
			"include-before", "load":
			continue // the config loader's own keys
		}
		n++
		fmt.Fprintf(&text, "%s = x\n", o.Name)
		if o.Arg == uwsgiopts.NoArg {
			args = append(args, "--"+o.Name)
		} else {
			args = append(args, "--"+o.Name+"=x")
		}
	}
	if n < 900 {
		t.Fatalf("only %d options to try", n)
	}
	ini := writeINI(t, text.String())
	s, err := parseSettings([]string{"--ini", ini})
	if err != nil {
		t.Fatalf("from a file: %v", err)
	}
	if len(s.notices) != n {
		t.Errorf("%d notices for %d options", len(s.notices), n)
	}
	if _, err := parseSettings(args); err != nil {
		t.Fatalf("from the command line: %v", err)
	}
}

// A key that is no uWSGI option is a placeholder in a file, as in uWSGI:
// silent when used as %(key), one line otherwise; strict makes it an error
// naming file and line; on the command line it is refused.
func TestPlaceholdersStrictAndUnrecognized(t *testing.T) {
	ini := writeINI(t, "[uwsgi]\nstrict-mode = true\nfolder = /srv\nemperor = %(folder)/vassals\n")
	s, err := parseSettings([]string{"--ini", ini})
	if err != nil {
		t.Fatal(err)
	}
	if n := noticeAt(t, s, "strict-mode"); n.opt.Line != 2 || !strings.Contains(n.msg, "placeholder") {
		t.Errorf("strict-mode: %+v", n)
	}
	if len(s.notices) != 1 || s.emperors[0] != "/srv/vassals" {
		t.Errorf("notices %+v, emperors %q", s.notices, s.emperors)
	}
	for _, strict := range []string{"strict = true", "strict", "strict = 1"} {
		ini := writeINI(t, "[uwsgi]\nemperor = /x\ntypo-option = 1\n"+strict+"\n")
		_, err := parseSettings([]string{"--ini", ini})
		if err == nil || !strings.Contains(err.Error(), ini+":3") || !strings.Contains(err.Error(), "typo-option") ||
			!strings.Contains(err.Error(), "strict") {
			t.Errorf("%s: err = %v, want one naming %s:3", strict, err, ini)
		}
	}
	ini = writeINI(t, "[uwsgi]\nemperor = /x\ntypo-option = 1\nstrict = false\n")
	if _, err := parseSettings([]string{"--ini", ini}); err != nil {
		t.Errorf("strict = false: %v", err)
	}
	_, err = parseSettings([]string{"--emperor", "/x", "--no-such-option", "1"})
	if err == nil || !strings.Contains(err.Error(), "command line") || !strings.Contains(err.Error(), "no-such-option: unrecognized option") {
		t.Errorf("command line: err = %v", err)
	}
	s, err = parseSettings([]string{"--set", "base=/opt", "--emperor", "%(base)/apps"})
	if err != nil || s.emperors[0] != "/opt/apps" {
		t.Errorf("--set placeholder used as %%(base): %v", err)
	}
	if _, err := parseSettings([]string{"--strict", "--set", "base=/opt", "--emperor", "%(base)/apps"}); err == nil {
		t.Errorf("strict with a --set placeholder: accepted")
	}
	if _, err := parseSettings([]string{"--emperor", "/x", "--master", "--workers", "4", "--die-on-term"}); err != nil {
		t.Errorf("uWSGI options on the command line: %v", err)
	}
}

// Flags read as uWSGI reads them: false/off/no/0 turn one off.
func TestFlagsTurnOff(t *testing.T) {
	for _, c := range []struct {
		line   string
		tyrant bool
	}{
		{"emperor-tyrant = false", false}, {"emperor-tyrant = off", false}, {"emperor-tyrant = 0", false},
		{"emperor-tyrant = no", false}, {"emperor-tyrant = true", true}, {"emperor-tyrant", true},
		{"emperor-tyrant = True", true}, {"emperor-tyrant = anything else", true}, // as uwsgi_opt_true reads it
	} {
		s, err := parseSettings([]string{"--ini", writeINI(t, "[uwsgi]\nemperor = /x\n"+c.line+"\n")})
		if err != nil || s.tyrant != c.tyrant {
			t.Errorf("%s: tyrant %v, %v", c.line, s != nil && s.tyrant, err)
		}
	}
	for _, v := range []string{"false", "OFF", "No", "0"} {
		s, err := parseSettings([]string{"--ini", writeINI(t, "[uwsgi]\nemperor = /x\nimperial-monitor-list = "+v+"\n")})
		if err != nil || s.proc.monitorList {
			t.Errorf("imperial-monitor-list = %s: on (%v)", v, err)
		}
	}
}

// die-on-term and no-orphans are accepted with a line saying what the
// Emperor already does; stats serves the Emperor's stats unless
// emperor-stats does.
func TestAcknowledgedAndStats(t *testing.T) {
	s, err := parseSettings([]string{"--emperor", "/x", "--die-on-term", "--no-orphans", "--stats", "127.0.0.1:9191"})
	if err != nil {
		t.Fatal(err)
	}
	if n := noticeAt(t, s, "die-on-term"); n.warn || !strings.Contains(n.why, "Ragnarok") {
		t.Errorf("die-on-term: %+v", n)
	}
	if n := noticeAt(t, s, "no-orphans"); !strings.Contains(n.why, "SIGKILL") {
		t.Errorf("no-orphans: %+v", n)
	}
	if s.stats != "127.0.0.1:9191" || !strings.Contains(noticeAt(t, s, "stats").msg, "serving the Emperor's stats") {
		t.Errorf("stats: emperor-stats %q, %+v", s.stats, noticeAt(t, s, "stats"))
	}
	s, err = parseSettings([]string{"--emperor", "/x", "--stats-server", "/run/s.sock", "--emperor-stats", "127.0.0.1:5001"})
	if err != nil {
		t.Fatal(err)
	}
	if s.stats != "127.0.0.1:5001" || !noticeAt(t, s, "stats-server").warn {
		t.Errorf("stats-server beside emperor-stats: %q %+v", s.stats, s.notices)
	}
}

// Values of the process options are checked when read, naming the place.
func TestProcessOptionValues(t *testing.T) {
	s, err := parseSettings([]string{"--emperor", "/x", "--umask", "027", "--max-fd", "4096", "--flock", "/a", "--flock-wait", "/b",
		"--uid", "nobody", "--gid", "65534", "--cap", "setuid,setgid", "--chdir", "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	p := s.proc
	if p.umask != "027" || p.maxFD != 4096 || strings.Join(p.flocks, " ") != "exit:/a wait:/b" || p.uid != "nobody" ||
		p.gid != "65534" || p.caps != "setuid,setgid" || p.chdir != "/tmp" {
		t.Errorf("%+v", p)
	}
	for _, bad := range [][]string{{"--umask", "999"}, {"--max-fd", "lots"}, {"--max-fd", "0"}, {"--uid", "no-such-user-here"},
		{"--gid", "no-such-group-here"}, {"--cap", "setuid,fly"}} {
		ini := writeINI(t, "[uwsgi]\n"+strings.TrimPrefix(bad[0], "--")+" = "+bad[1]+"\n")
		if _, err := parseSettings([]string{"--ini", ini}); err == nil || !strings.Contains(err.Error(), ini+":2") {
			t.Errorf("%q: err = %v, want one naming %s:2", bad, err, ini)
		}
	}
}

// imperial-monitor-list prints the schemes as uWSGI does and exits 0.
func TestImperialMonitorList(t *testing.T) {
	for _, name := range []string{"--imperial-monitor-list", "--imperial-monitors-list"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{name}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, errb.String())
		}
		for _, want := range []string{"*** loaded imperial monitors ***\n", "\ndir\nglob\n", "\npg\n", "\nzmq\n", "--- end of imperial monitors list ---\n"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s printed %q, lacking %q", name, out.String(), want)
			}
		}
	}
}

// emperor-use-clone takes uWSGI's names; emperor-cap numbers go up to the
// kernel's last capability.
func TestUseCloneAndCapNumbers(t *testing.T) {
	s, err := parseSettings([]string{"--emperor", "/x", "--emperor-use-clone", "mount,pid,ipc,uts,net,sysvsem",
		"--emperor-cap", fmt.Sprint(capabilities.LastCap())})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := namespaces.Parse(s.useClone)
	if err != nil || ns.String() != "fs,net,ipc,pid,uts,sysvsem" {
		t.Errorf("emperor-use-clone: %v %v", ns, err)
	}
	iso, err := isolationOptions(s)
	if err != nil || !iso.caps.Has(capabilities.LastCap()) {
		t.Errorf("emperor-cap %d: %v %v", capabilities.LastCap(), iso, err)
	}
	s.caps = fmt.Sprint(capabilities.LastCap() + 1)
	if _, err := isolationOptions(s); err == nil {
		t.Errorf("emperor-cap %d beyond the kernel's last: accepted", capabilities.LastCap()+1)
	}
}

// A uWSGI flag on the command line takes no value, as getopt reads it: the
// config file after it is a config file, loaded by its suffix.
func TestFlagBeforeAConfigFile(t *testing.T) {
	ini := writeINI(t, "[uwsgi]\nemperor = /srv/vassals\n")
	s, err := parseSettings([]string{"--master", ini})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.emperors, []string{"/srv/vassals"}) {
		t.Errorf("emperors %q: the file after --master was not read as a config file", s.emperors)
	}
}
