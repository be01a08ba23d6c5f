package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

// magicProbe is an ini file listing every per-file magic variable.
const magicProbe = "[uwsgi]\no = %o\np = %p\ns = %s\nd = %d\nc = %c\ne = %e\nn = %n\nx = %x\ni = %i\nj = %j\n" +
	"0 = %0\n1 = %1\n2 = %2\n9 = %9\n" +
	"O = %O\nP = %P\nS = %S\nD = %D\nC = %C\nE = %E\nN = %N\nX = %X\nI = %I\nJ = %J\n"

// djb33x is the hash %j uses, written out independently.
func djb33x(s string) string {
	h := uint32(5381)
	for _, b := range []byte(s) {
		h = h*33 ^ uint32(b)
	}
	return fmt.Sprintf("%08x", h)
}

// inode is the lstat inode of p.
func inode(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(fi.Sys().(*syscall.Stat_t).Ino)
}

// get returns the last value of key, failing if absent.
func get(t *testing.T, c *config.Config, key string) string {
	t.Helper()
	v, ok := c.Get(key)
	if !ok {
		t.Fatalf("option %q missing from %v", key, keyvals(c))
	}
	return v
}

func TestMagicPerFile(t *testing.T) {
	root := tempDir(t)
	dir := filepath.Join(root, "etc", "vassals")
	writeFiles(t, root, map[string]string{"etc/vassals/app.ini": magicProbe})
	app := filepath.Join(dir, "app.ini")
	if err := os.Symlink(app, filepath.Join(dir, "link.ini")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(root, "linkdir")); err != nil {
		t.Fatal(err)
	}
	comps := strings.Split(strings.Trim(dir, "/"), "/")
	comp := func(i int) string {
		if i < len(comps) {
			return comps[i]
		}
		return ""
	}

	relLoader, _ := newLoader()
	relLoader.Env.Cwd = filepath.Join(root, "etc")
	relLoader.ReadFile = func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(root, "etc", p)) }

	plain, _ := newLoader()
	tests := []struct {
		name   string
		l      *config.Loader
		load   string
		p      string // expected %p
		inode  string
		x      string
		wantS  string
		wantDr string
	}{
		{"regular file", plain, app + ":uwsgi", app, inode(t, app), "uwsgi", "app.ini", dir + "/"},
		{"symlink keeps its own path", plain, filepath.Join(dir, "link.ini"), filepath.Join(dir, "link.ini"),
			inode(t, filepath.Join(dir, "link.ini")), "", "link.ini", dir + "/"},
		{"file under a symlinked dir is resolved", plain, filepath.Join(root, "linkdir", "app.ini"), app, inode(t, app), "", "app.ini", dir + "/"},
		{"relative name against Env.Cwd", relLoader, "vassals/app.ini", app, inode(t, app), "", "app.ini", dir + "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.l.Load(config.INI, tc.load)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"o": tc.load, "p": tc.p, "s": tc.wantS, "d": tc.wantDr, "c": "vassals",
				"e": "ini", "n": strings.TrimSuffix(tc.wantS, ".ini"), "x": tc.x, "i": tc.inode, "j": djb33x(tc.p),
				"0": comp(0), "1": comp(1), "2": comp(2), "9": comp(9),
			}
			for k, v := range want {
				if got := get(t, c, k); got != v {
					t.Errorf("%%%s = %q, want %q", k, got, v)
				}
				// The first file read freezes the uppercase forms.
				if k >= "a" {
					if got := get(t, c, strings.ToUpper(k)); got != v {
						t.Errorf("%%%s = %q, want %q", strings.ToUpper(k), got, v)
					}
				}
			}
		})
	}
}

func TestMagicStatic(t *testing.T) {
	l, _ := newLoader()
	text := "[uwsgi]\nv = %v\nh = %h\nt = %t\nT = %T\nV = %V\nk = %k\nu = %u\nU = %U\ng = %g\nG = %G\nb = %b\n" +
		"esc = %[[1m\npct = 100%%\nlit = %%n\nph = %(name)\nunknown = [%z%Z%!%-]\nn = [%n%d%p]\no = %o\nO = %O\ntrail = 50%"
	c, err := l.Parse(config.INI, "emperor://app.ini", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"v": "/work", "h": "host1", "t": "1700000000", "T": "1700000000123456", "V": "2.0.30-test", "k": "8",
		"u": "1000", "U": "app", "g": "100", "G": "users", "b": "/usr/bin/emperor",
		"esc": "\x1b[1m", "pct": "100%", "lit": "%n", "ph": "%(name)", "unknown": "[]",
		// Text from the config channel has only %o.
		"n": "[]", "o": "emperor://app.ini", "O": "emperor://app.ini", "trail": "50%",
	}
	for k, v := range want {
		if got := get(t, c, k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, o := range c.Options {
		if o.File != "emperor://app.ini" {
			t.Errorf("option %s has file %q", o.Key, o.File)
		}
	}
}

func TestMagicPercentEatsNewline(t *testing.T) {
	// As in uWSGI, "%" followed by any byte is a variable: "%\n" is unknown
	// and expands to nothing, joining two lines.
	l, _ := newLoader()
	c, err := l.Parse(config.INI, "a.ini", []byte("[uwsgi]\na = 1%\nb = 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	wantKVs(t, c, []kv{{"a", "1b = 2", 2}})
}

func TestMagicFrozenFromFirstMainFile(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{
		"first.ini":    "[uwsgi]\nfirst_n = %n\nfirst_N = %N\ninclude = " + filepath.Join(dir, "inc.ini") + "\n",
		"inc.ini":      "[uwsgi]\ninc_n = %n\ninc_N = %N\n",
		"tmpl/pre.ini": "[uwsgi]\npre_n = %n\npre_N = %N\n",
		"second.ini":   "[uwsgi]\nsecond_n = %n\nsecond_N = %N\n",
	})
	l, _ := newLoader()
	c, err := l.Args([]string{
		"--include", filepath.Join(dir, "tmpl/pre.ini"), // an include never freezes
		"--ini", filepath.Join(dir, "first.ini"),
		"--ini", filepath.Join(dir, "second.ini"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pre_n=pre", "pre_N=",
		"first_n=first", "first_N=first",
		"inc_n=inc", "inc_N=first",
		"second_n=second", "second_N=first",
	}
	if got := keyvals(c); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestMagicNotInArgs(t *testing.T) {
	l, _ := newLoader()
	c, err := l.Args([]string{"--socket", "/tmp/%n.sock"})
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "socket"); got != "/tmp/%n.sock" {
		t.Errorf("socket = %q; magic variables are for file text only", got)
	}
}
