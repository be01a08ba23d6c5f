package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
)

func TestSettingsFromIniWithUWSGINames(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "emperor.ini")
	os.WriteFile(ini, []byte(`[uwsgi]
emperor = %dvassals
emperor = /srv/*/app.ini
emperor-freq = 5
binary-path = /usr/bin/uwsgi
vassal-set = processes=2
vassals-set = master=1
vassals-include = common.ini
vassals-include-before = before.ini
vassals-inherit = tmpl.ini
vassals-inherit-before = tmplb.ini
reload-mercy = 7
emperor-nofollow = true
emperor-graceful-shutdown = 1
emperor-extra-extension = .conf
emperor-throttle = 250
base = /opt
emperor = %(base)/apps
master = true
`), 0o644)
	s, err := parseSettings([]string{"--ini", ini, "--dir", "/x", "--glob", "/y/*.ini"})
	if err != nil {
		t.Fatal(err)
	}
	wantEmperors := []string{dir + "/vassals", "/srv/*/app.ini", "/opt/apps", "dir:///x", "glob:///y/*.ini"}
	if strings.Join(s.emperors, " ") != strings.Join(wantEmperors, " ") {
		t.Errorf("emperors = %q, want %q", s.emperors, wantEmperors)
	}
	if s.freq != 5*time.Second || s.reloadMercy != 7*time.Second || s.throttle != 250*time.Millisecond {
		t.Errorf("freq %s, mercy %s, throttle %s", s.freq, s.reloadMercy, s.throttle)
	}
	if s.binary != "/usr/bin/uwsgi" || !s.noFollow || !s.graceful {
		t.Errorf("binary %q nofollow %v graceful %v", s.binary, s.noFollow, s.graceful)
	}
	if strings.Join(s.vassalSet, ",") != "processes=2,master=1" || s.include[0] != "common.ini" ||
		s.includeBefore[0] != "before.ini" || s.inherit[0] != "tmpl.ini" || s.inheritBefore[0] != "tmplb.ini" {
		t.Errorf("templates: %+v", s)
	}
	if len(s.notices) != 1 || s.notices[0].opt.Key != "master" {
		t.Errorf("notices %+v, want one about master", s.notices)
	}
}

func TestSettingsFromYAMLXMLAndJSON(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"e.yaml": "uwsgi:\n  emperor: /etc/vassals\n  emperor-freq: 7\n  vassal-set:\n    - a=1\n    - b=2\n",
		"e.xml":  "<uwsgi>\n  <emperor>/etc/vassals</emperor>\n  <emperor-freq>7</emperor-freq>\n  <vassal-set>a=1</vassal-set>\n  <vassal-set>b=2</vassal-set>\n</uwsgi>\n",
		"e.json": `{"uwsgi": {"emperor": "/etc/vassals", "emperor-freq": 7, "vassal-set": ["a=1", "b=2"]}}`,
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(text), 0o644)
		flag := "--" + strings.TrimPrefix(filepath.Ext(name), ".")
		s, err := parseSettings([]string{flag, path})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(s.emperors) != 1 || s.emperors[0] != "/etc/vassals" || s.freq != 7*time.Second || strings.Join(s.vassalSet, " ") != "a=1 b=2" {
			t.Errorf("%s: emperors %q freq %s vassal-set %q", name, s.emperors, s.freq, s.vassalSet)
		}
	}
}

func TestUnknownOptionNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "emperor.ini")
	os.WriteFile(ini, []byte("[uwsgi]\nemperor = /etc/vassals\n\nemperor-frq = 3\n"), 0o644)
	// A placeholder, as in uWSGI, unless strict.
	_, err := parseSettings([]string{"--strict", "--ini", ini})
	if err == nil || !strings.Contains(err.Error(), ini+":4") || !strings.Contains(err.Error(), "emperor-frq") {
		t.Fatalf("err = %v, want one naming %s:4 and emperor-frq", err, ini)
	}
	_, err = parseSettings([]string{"--emperor-frq", "3"})
	if err == nil || !strings.Contains(err.Error(), "command line") {
		t.Fatalf("err = %v, want one naming the command line", err)
	}
	_, err = parseSettings([]string{"--emperor-freq", "soon"})
	if err == nil || !strings.Contains(err.Error(), "emperor-freq") {
		t.Fatalf("err = %v, want a bad value error", err)
	}
}

func TestRunRefusesNothingToGovern(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), nil, &out, &errb); code == 0 {
		t.Fatalf("exit 0 with no monitor")
	}
	if !strings.Contains(errb.String(), "no monitor") {
		t.Errorf("stderr %q does not say why", errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--emperor-freq") {
		t.Errorf("--help: exit %d, %q", code, out.String())
	}
}

// buildBinaries builds emperor and vassal into a temp dir.
func buildBinaries(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, pkg := range []string{".", "../vassal"} {
		name := "emperor"
		if pkg != "." {
			name = "vassal"
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return bin
}

// TestSignals runs the real binary: SIGTERM runs Ragnarok and exits 0, and
// the vassals die with it.
func TestSignals(t *testing.T) {
	bin := buildBinaries(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sleepy.ini"), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	sock := filepath.Join(t.TempDir(), "stats.sock")
	csock := filepath.Join(t.TempDir(), "command.sock")
	pidfile := filepath.Join(t.TempDir(), "emperor.pid")
	cmd := exec.Command(filepath.Join(bin, "emperor"), "--dir", dir, "--reload-mercy", "5", "--emperor-stats", sock,
		"--emperor-command-socket", csock, "--emperor-pidfile", pidfile)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine := func(what string) string {
		t.Helper()
		deadline := time.After(testkit.Deadline)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("emperor exited before %q", what)
				}
				if strings.Contains(l, what) {
					return l
				}
			case <-deadline:
				t.Fatalf("no log line with %q", what)
			}
		}
	}
	line := waitLine(`msg="vassal running"`)
	pid := fieldValue(line, "pid")
	if b, err := os.ReadFile(pidfile); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(cmd.Process.Pid) {
		t.Errorf("emperor-pidfile holds %q (%v), want %d", b, err, cmd.Process.Pid)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"status", sock}, &out, &errb); code != 0 {
		t.Fatalf("emperor status: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "sleepy.ini") || !strings.Contains(out.String(), "running") || !strings.Contains(out.String(), pid) {
		t.Errorf("emperor status printed:\n%s", out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"status", sock, "--json"}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"id": "sleepy.ini"`) {
		t.Errorf("emperor status --json: exit %d:\n%s", code, out.String())
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	waitLine(`msg="vassal status" vassal=sleepy.ini`)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLine(`msg="vassal reload"`)
	out.Reset()
	if code := run(context.Background(), []string{"reload", "sleepy.ini", "--socket", csock}, &out, &errb); code != 0 || !strings.Contains(out.String(), "reloading sleepy.ini") {
		t.Errorf("emperor reload: exit %d, %q %q", code, out.String(), errb.String())
	}
	waitLine(`reason=command`)
	if code := run(context.Background(), []string{"reload", "nosuch.ini", "--socket", csock}, &out, &errb); code == 0 {
		t.Errorf("emperor reload of an unknown vassal exited 0")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitLine("Ragnarok")
	go func() {
		for range lines {
		}
	}()
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("emperor after SIGTERM: %v (want exit 0)", err)
	}
	if _, err := os.Stat(pidfile); err == nil {
		t.Errorf("emperor-pidfile left behind after exit")
	}
	if pid != "" {
		if n, _ := strconv.Atoi(pid); testkit.Running(n) {
			t.Errorf("vassal %s survived Ragnarok", pid)
		}
	}
}

// TestVassalsDieWithTheEmperor kills the Emperor with SIGKILL: no Ragnarok
// runs, yet every vassal dies (Pdeathsig, set from the one spawner thread).
func TestVassalsDieWithTheEmperor(t *testing.T) {
	bin := buildBinaries(t)
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		os.WriteFile(filepath.Join(dir, n+".ini"), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	}
	cmd := exec.Command(filepath.Join(bin, "emperor"), "--dir", dir)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []string
	sc := bufio.NewScanner(stderr)
	for len(pids) < 3 && sc.Scan() {
		if strings.Contains(sc.Text(), `msg="vassal running"`) {
			pids = append(pids, fieldValue(sc.Text(), "pid"))
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if len(pids) < 3 {
		t.Fatalf("only %d vassals started", len(pids))
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(testkit.Deadline)
	for _, pid := range pids {
		for {
			if n, _ := strconv.Atoi(pid); !testkit.Running(n) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("vassal %s outlived its Emperor", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// fieldValue extracts key=value from a slog text line.
func fieldValue(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}
