package config_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/internal/testenv"
)

// uwsgiBinary is the real uWSGI the compatibility test compares with.
const uwsgiBinary = "/usr/bin/uwsgi"

// TestLogicAsRealUWSGI reads the same ini files with this package and with
// the real uWSGI (uwsgi --ini F --show-config, which prints every option it
// kept and exits for want of a socket), and compares the options.
func TestLogicAsRealUWSGI(t *testing.T) {
	if _, err := os.Stat(uwsgiBinary); err != nil {
		testenv.Missing(t, "no "+uwsgiBinary+" to compare with")
	}
	dir := logicDir(t)
	g := filepath.Join(dir, "g")
	host, _ := os.Hostname()
	bodies := []string{
		"foo = 1\nif-exists = " + g + "/a.txt\nbar = %(_)\nbaz = x\nendif =\nif-exists = /nonexistent\nnope = 1\nendif\n{% if x %}\nlast = 1",
		"if-file = " + g + "/a.txt\na = %(_)\nendif\nif-not-file = " + g + "\nb = %(_)\nend-if\nif-dir = " + g + "\nc = %(_)\nendif\nif-not-dir = " + g + "\nd = 1\nendif\nifdir = " + g + "/sub\ne = 1\nendif",
		"if-env = HOME\nD = %(_)\nendif\nif-env = HOME=/home/app\nE = %(_)\nend\nif-not-env = NOPE_X\nF = %(_)\nendif\nif-not-env = HOME=/x\nG = %(_)\nendif\nifenv = EMPTY\nH = [%(_)]\nendif",
		"foo = 1\nfoo = 2\nif-opt = foo\nA = %(_)\nendif\nif-opt = foo=2\nB = x\nendif\nif-not-opt = bar\nbar = 1\nC = %(_)\nendif",
		"for = a  b c\nitem = %(_)\nitem2 = %(_)!\nendfor\nfor-glob = " + g + "/*\nH = %(_)\nendfor\nfor-glob = " + g + "/zz*\nI = %(_)\nendfor\nfor-glob = " + g + "/.*\nJ = %(_)\nendfor",
		"for-glob = " + dir + "/s/*\nS = %(_)\nendfor\nfor-glob = " + dir + "/empty/.*\nE = %(_)\nendfor\nfor-glob = " + dir + "/*/*\nT = %(_)\nendfor\nfor-glob = " + g + "/sub/../*.txt\nU = %(_)\nendfor",
		"for-readline = " + dir + "/lines.txt\nJ = [%(_)]\nendfor\nfor-readline = " + dir + "/nolines.txt\nK = %(_)\nendfor\nfor-times = 3x\nL = %(_)\nendfor\nfor-times = -2\nM = %(_)\nendfor",
		"if-reload\nN = 1\nendif\nif-not-reload\nO = 1\nendif\nif-hostname = " + host + "\nP = %(_)\nendif\nif-not-hostname = " + host + "\nQ = 1\nendif\nif-hostname-match = ^" + host + "$\nR = 1\nendif",
		"if-exists = /nonexistent\nif-exists = /\ninner = 1\nendif\nafter = 1\nendif\nfinal = 1",
		"if-exists = " + dir + "/extra.ini\ninclude = %(_)\nendif\nz = 1\nfor = 1 2\nini = " + dir + "/extra.ini\nendfor\nendfor\nstray = 1",
		"\n\n  key with spaces = a = b  \n; comment\n  # comment\nflag\nurl = http://x/#y ; z\n[other]\nno = 1\n[uwsgi]\nyes = 1",
	}
	env := []string{"HOME=/home/app", "EMPTY=", "PATH=/usr/bin:/bin"}
	for i, body := range bodies {
		path := filepath.Join(dir, "case"+string(rune('a'+i))+".ini")
		if err := os.WriteFile(path, []byte("[uwsgi]\n"+body+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := realUWSGIOptions(t, path, env)
			l := &config.Loader{Env: config.Env{Getenv: func(k string) (string, bool) {
				for _, kv := range env {
					if name, v, _ := strings.Cut(kv, "="); name == k {
						return v, true
					}
				}
				return "", false
			}}}
			c, err := l.Load(config.INI, path)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(keyvals(c), "\n")
			if got != strings.Join(want, "\n") {
				t.Errorf("ours:\n%s\nuWSGI's:\n%s", got, strings.Join(want, "\n"))
			}
		})
	}
}

// realUWSGIOptions runs uWSGI on the ini file path and returns the options
// it kept, as key=value, without the ones this package does not keep: the
// config loaders and the logic keys.
func realUWSGIOptions(t *testing.T, path string, env []string) []string {
	t.Helper()
	cmd := exec.Command(uwsgiBinary, "--ini", path, "--show-config")
	cmd.Env = env
	cmd.Dir = filepath.Dir(path)
	out, _ := cmd.CombinedOutput() // it exits 1: no socket
	opts := showConfig(string(out))
	if len(opts) == 0 {
		t.Fatalf("uWSGI printed no options:\n%s", out)
	}
	return opts
}

// showConfig reads the options uwsgi --show-config printed, as key=value,
// without the ones this package does not keep: the config loaders and the
// logic keys.
func showConfig(out string) []string {
	var opts []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "[uwsgi]":
			in = true
			continue
		case line == ";end of configuration":
			in = false
		}
		if !in || strings.HasPrefix(line, ";") {
			continue
		}
		k, v, _ := strings.Cut(line, " = ")
		switch {
		case k == "ini", k == "include", k == "show-config", k == "set", k == "end", k == "ifenv", k == "ifdir",
			strings.HasPrefix(k, "if-"), strings.HasPrefix(k, "for"), strings.HasPrefix(k, "end-"),
			k == "endif", k == "endfor":
			continue
		}
		opts = append(opts, k+"="+v)
	}
	return opts
}

// TestArgsAsRealUWSGI compares command lines and UWSGI_* variables read by
// Args with what the real uWSGI keeps from them. uWSGI prints a flag given
// without a value as "true"; Args gives it "".
func TestArgsAsRealUWSGI(t *testing.T) {
	if _, err := os.Stat(uwsgiBinary); err != nil {
		testenv.Missing(t, "no "+uwsgiBinary+" to compare with")
	}
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{"b.ini": "[uwsgi]\nfromfile = 1\nharakiri = 9\n"})
	b := filepath.Join(dir, "b.ini")
	tests := []struct {
		args, env []string
	}{
		{[]string{b, "-ML", "-t5", "-C", "-C666", "-l", "10", "-b8192", "-TirR", "5", "-z", "3", "-S", "k=v"}, nil},
		{[]string{"-M", "--", b, "[x"}, nil},
		{[]string{"--harakiri", "3", "--if-env", "HOME", "--chdir", "%(_)", "--endif"},
			[]string{"UWSGI_FOO_BAR=Hello_World", "UWSGI_RELOADS=0", "UWSGI_JAIL_PID=1", "UWSGI_VASSAL_SOCKET=/x", "UWSGI_Mixed_Case=1", "UWSGI_HARAKIRI=7"}},
	}
	for i, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			env := append([]string{"HOME=/home/app", "PATH=/usr/bin:/bin"}, tc.env...)
			cmd := exec.Command(uwsgiBinary, append([]string{"--show-config"}, tc.args...)...)
			cmd.Env, cmd.Dir = env, dir
			out, _ := cmd.CombinedOutput()
			want := showConfig(string(out))
			l := &config.Loader{Environ: env, Env: config.Env{Getenv: func(k string) (string, bool) {
				if k == "HOME" {
					return "/home/app", true
				}
				return "", false
			}}}
			c, err := l.Args(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range c.Options {
				if o.Value == "" {
					o.Value = "true"
				}
				got = append(got, o.Key+"="+o.Value)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("case %d: ours:\n%s\nuWSGI's:\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// logicDir is a directory of files for the logic cases: globbed, read
// line by line, included.
func logicDir(t *testing.T) string {
	t.Helper()
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{
		"g/a.txt":      "",
		"g/b.txt":      "",
		"g/.dot":       "",
		"g/.hid/x":     "",
		"g/sub/x":      "",
		"lines.txt":    "l1\r\n\nl3",
		"extra.ini":    "[uwsgi]\nextra = 1\n",
		"logic.ini":    "[uwsgi]\nif-exists = /nonexistent\nnested-inner = 1\nendif\nin-extra = 1\n",
		"unclosed.ini": "[uwsgi]\nif-env = NOPE\n",
		"s/a/x":        "",
		"s/a.txt":      "",
	})
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
