package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

// parseINIText reads ini text with the test Loader l.
func parseINIText(t *testing.T, l *config.Loader, text string) (*config.Config, error) {
	t.Helper()
	return l.Parse(config.INI, "app.ini", []byte(text))
}

// TestLogicAsUWSGI: the options uWSGI 2.0.21 keeps from this file (checked
// with "uwsgi --show-config --ini"), less the logic keys, which we
// consume: blocks do not nest (an inner if is dropped and its endif closes
// the outer block), for splits on spaces, %(_) stays when if-not-env finds
// nothing, if-opt sees the first value, a block left open runs to the end.
func TestLogicAsUWSGI(t *testing.T) {
	const text = `
[uwsgi]
if-exists = /nonexistent
if-exists = /etc
inner = %(_)
endif =
after = x
endif
for = a b  c
item = %(_)
endfor
for-times = 3
n = %(_)
end
if-env = HOME
home = %(_)
endif
if-env = HOME=/nope
bad = 1
endif
if-opt = after
opt = %(_)
endif
if-opt = item
firstitem = %(_)
endif
if-not-env = NOPE_X
ne = [%(_)]
endif
if-reload
r = 1
endif
if-not-reload
nr = 1
endif-x`
	l, warns := newLoader()
	c, err := parseINIText(t, l, text)
	if err != nil {
		t.Fatal(err)
	}
	want := "after=x item=a item=b item=c n=1 n=2 n=3 home=/home/app opt=x firstitem=a ne=[%(_)] nr=1 endif-x="
	if got := strings.Join(keyvals(c), " "); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if len(*warns) != 1 || !strings.Contains((*warns)[0], "app.ini:33: if-not-reload = : block not closed") {
		t.Errorf("warnings %q, want one about the if-not-reload block left open", *warns)
	}
	if o := c.Lookup("item")[2]; o.File != "app.ini" || o.Line != 10 {
		t.Errorf("loop copy at %s:%d, want the body line app.ini:10", o.File, o.Line)
	}
}

// TestLogicIncludeIfExists is the pattern of real Emperor configs:
// include a file only when it is there.
func TestLogicIncludeIfExists(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{
		"local.ini": "[uwsgi]\nlocal = 1\nendif\nlocal2 = 2\n",
		"main.ini": "[uwsgi]\nif-exists = " + dir + "/local.ini\ninclude = %(_)\nendif =\n" +
			"if-exists = " + dir + "/absent.ini\ninclude = %(_)\nendif\nlast = 1\n",
	})
	l, _ := newLoader()
	c, err := l.Load(config.INI, filepath.Join(dir, "main.ini"))
	if err != nil {
		t.Fatal(err)
	}
	// The endif inside local.ini is ignored: the block chose to load it.
	if got, want := strings.Join(keyvals(c), " "), "local=1 local2=2 last=1"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestLogicTests(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{"f": "x", "d/g": "y"})
	if err := os.Symlink(filepath.Join(dir, "d"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	f, d, link, none := filepath.Join(dir, "f"), filepath.Join(dir, "d"), filepath.Join(dir, "link"), filepath.Join(dir, "none")
	tests := []struct {
		name, text, want string
		reload           bool
	}{
		{"if-exists file and dir", "ifexists=" + f + "\na=%(_)\nendif\nif-exists=" + d + "\nb=%(_)\nendif\nif-exists=" + none + "\nc=1\nendif", "a=" + f + " b=" + d, false},
		{"if-not-exists", "if-not-exists=" + none + "\na=%(_)\nendif\nif-not-exists=" + f + "\nb=1\nendif", "a=" + none, false},
		{"if-file", "if-file=" + f + "\na=%(_)\nend-if\nif-file=" + d + "\nb=1\nendif\nif-not-file=" + d + "\nc=%(_)\nendif\nif-not-file=" + f + "\nx=1\nendif", "a=" + f + " c=" + d, false},
		{"if-dir follows symlinks", "if-dir=" + link + "\na=%(_)\nendif\nifdir=" + f + "\nb=1\nendif\nif-directory=" + d + "\nc=1\nendif\nif-not-dir=" + f + "\nd=1\nendif\nif-not-dir=" + d + "\ne=1\nendif", "a=" + link + " c=1 d=1", false},
		{"if-env", "if-env=HOME\na=%(_)\nendif\nifenv=HOME=/home/app\nb=%(_)\nendif\nif-env=HOME=/x\nc=1\nendif\nif-env=NOPE\nd=1\nendif\nif-env=EMPTY\ne=[%(_)]\nendif", "a=/home/app b=/home/app e=[]", false},
		{"if-not-env", "if-not-env=NOPE\na=%(_)\nendif\nif-not-env=HOME\nb=1\nendif\nif-not-env=HOME=/x\nc=%(_)\nendif\nif-not-env=HOME=/home/app\nd=1\nendif", "a=%(_) c=/home/app", false},
		{"if-opt", "socket=s1\nsocket=s2\nif-opt=socket\na=%(_)\nendif\nif-opt=socket=s2\nb=1\nendif\nif-opt=socket=s1\nc=%(_)\nendif\nif-opt=nope\nd=1\nendif", "socket=s1 socket=s2 a=s1 c=s1", false},
		{"if-not-opt", "socket=s1\nif-not-opt=nope\na=%(_)\nendif\nif-not-opt=socket\nb=1\nendif\nif-not-opt=socket=x\nc=%(_)\nendif\nif-not-opt=socket=s1\nd=1\nendif", "socket=s1 a=%(_) c=s1", false},
		{"if-opt sees placeholders", "set-ph=base=/opt\nif-opt=base=/opt\na=%(_)\nendif", "set-ph=base=/opt a=/opt", false},
		{"if-opt sees earlier options only", "if-opt=later\na=1\nendif\nlater=1", "later=1", false},
		{"if-reload on a reload", "if-reload\na=%(_)\nendif\nif-not-reload\nb=1\nendif", "a=%(_)", true},
		{"if-hostname", "if-hostname=host1\na=%(_)\nendif\nif-hostname=other\nb=1\nendif\nif-not-hostname=other\nc=%(_)\nendif", "a=host1 c=other", false},
		{"if-hostname-match", "if-hostname-match=^host[0-9]$\na=%(_)\nendif\nif-not-hostname-match=^web\nb=1\nendif\nif-hostname-match=web\nc=1\nendif", "a=^host[0-9]$ b=1", false},
		{"if-plugin: no plugin is ever loaded", "if-plugin=python\na=1\nendif\nifplugin=python\nb=1\nendif\nif-not-plugin=python\nplugin=%(_)\nendif", "plugin=python", false},
		{"body of several options", "if-env=HOME\na=1\nb=%(_)/x %(_)\nendif", "a=1 b=/home/app/x /home/app", false},
		{"endif without if, endfor without for", "endif\nendfor\nend-for=x\na=1", "a=1", false},
		// As uWSGI: each option is repeated for every item before the next one.
		{"for", "for=x  y\nsocket=/run/%(_).sock\nprocesses=2\nendfor", "socket=/run/x.sock socket=/run/y.sock processes=2 processes=2", false},
		{"for with no word", "for=\na=1\nendfor\nb=1", "b=1", false},
		{"for-times", "for-times=2\nw=%(_)\nendfor\nfor-times=0\nx=1\nendfor\nfor-times=-3\ny=1\nendfor\nfor-times=abc\nz=1\nendfor\nfor-times= 2x\nv=%(_)\nendfor", "w=1 w=2 v=1 v=2", false},
		{"set inside a block", "if-env=HOME\nset=home=%(_)\nendif", "home=/home/app", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLoader()
			l.Reload = tc.reload
			c, err := parseINIText(t, l, "[uwsgi]\n"+tc.text+"\n")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(keyvals(c), " "); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLogicLoops(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{
		"v/a.ini": "", "v/b.ini": "", "v/.hidden.ini": "", "v/sub.ini/x": "", "v/c.xml": "",
		"lines": "one\r\ntwo\n\nthree",
	})
	v := filepath.Join(dir, "v")
	tests := []struct{ name, text, want, warn string }{
		{"for-glob marks dirs and skips dot files", "for-glob=" + v + "/*.ini\ni=%(_)\nendfor",
			"i=" + v + "/a.ini i=" + v + "/b.ini i=" + v + "/sub.ini/", ""},
		{"for-glob negated class", "for-glob=" + v + "/[!a]*.ini\ni=%(_)\nendfor", "i=" + v + "/b.ini i=" + v + "/sub.ini/", ""},
		{"for-glob dot pattern", "for-glob=" + v + "/.*.ini\ni=%(_)\nendfor", "i=" + v + "/.hidden.ini", ""},
		{"for-glob without match gives the pattern", "for-glob=" + v + "/*.yaml\ni=%(_)\nendfor", "i=" + v + "/*.yaml", ""},
		{"for-glob of a malformed pattern gives the pattern, as glob(3)", "for-glob=[\ni=%(_)\nendfor", "i=[", ""},
		{"for-readline", "for-readline=" + filepath.Join(dir, "lines") + "\nl=[%(_)]\nendfor", "l=[one] l=[two] l=[] l=[three]", ""},
		{"for-readline missing file", "for-readline=" + filepath.Join(dir, "none") + "\nl=%(_)\nendfor\nafter=1", "after=1", "for-readline: cannot read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, warns := newLoader()
			c, err := parseINIText(t, l, "[uwsgi]\n"+tc.text+"\n")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(keyvals(c), " "); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if (tc.warn == "") != (len(*warns) == 0) || tc.warn != "" && !strings.Contains((*warns)[0], tc.warn) {
				t.Errorf("warnings %q, want %q", *warns, tc.warn)
			}
		})
	}
}

func TestLogicErrors(t *testing.T) {
	dir := tempDir(t)
	writeFiles(t, dir, map[string]string{"inner.ini": "[uwsgi]\nif-env = HOME\nx = 1\nendif\n"})
	tests := []struct {
		name, text string
		want       []string
	}{
		{"nested block taken", "if-env=HOME\nif-exists=/\nendif\nendif",
			[]string{"app.ini:3: if-exists: config logic cannot nest: if-exists is inside the if-env block opened at app.ini:2"}},
		{"nested in a file loaded by a block", "if-env=HOME\ninclude=" + dir + "/inner.ini\nendif",
			[]string{dir + "/inner.ini:2: if-env: config logic cannot nest"}},
		{"for-times beyond the bound", "for-times=1000000000\na=1\nendfor",
			[]string{"app.ini:2: for-times: 1000000000 iterations is more than the 100000 allowed"}},
		{"bad hostname regexp", "if-hostname-match=(\na=1\nendif", []string{"app.ini:2: if-hostname-match: bad regular expression"}},
		{"set without equals", "set=foo", []string{`app.ini:2: set: "foo" is not KEY=VALUE`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLoader()
			c, err := parseINIText(t, l, "[uwsgi]\n"+tc.text+"\n")
			if c != nil {
				t.Errorf("config returned with error")
			}
			wantError(t, err, tc.want...)
		})
	}
}

// TestLogicBudget: loops count against Loader.MaxBytes.
func TestLogicBudget(t *testing.T) {
	l, _ := newLoader()
	l.MaxBytes = 64 << 10
	_, err := parseINIText(t, l, "[uwsgi]\nfor-times=100000\nsome-long-option-name=%(_) and some text\nendfor\n")
	wantError(t, err, "app.ini:2: for-times: configuration too large")
}

// TestLogicEveryFormat: the same logic in xml, yaml, json and on the
// command line, and a block that runs from a file into the command line.
func TestLogicEveryFormat(t *testing.T) {
	dir := tempDir(t)
	p := func(name string) string { return filepath.Join(dir, name) }
	writeFiles(t, dir, map[string]string{
		"a.xml":    "<uwsgi><if-env>HOME</if-env><home>%(_)</home><endif/><for>x y</for><s>%(_)</s><endfor/></uwsgi>",
		"a.yaml":   "uwsgi:\n  if-env: HOME\n  home: \"%(_)\"\n  endif: 1\n  for: x y\n  s: \"%(_)\"\n  endfor:\n",
		"a.json":   `{"uwsgi": {"if-env": "HOME", "home": "%(_)", "endif": true, "for": "x y", "s": ["%(_)", "<%(_)>"], "endfor": null}}`,
		"open.ini": "[uwsgi]\nif-exists = /nonexistent\nfrom-file = 1\n",
	})
	for _, name := range []string{"a.xml", "a.yaml", "a.json"} {
		l, _ := newLoader()
		c, err := l.Args([]string{"--include", p(name)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := "home=/home/app s=x s=y"
		if name == "a.json" {
			want = "home=/home/app s=x s=y s=<x> s=<y>"
		}
		if got := strings.Join(keyvals(c), " "); got != want {
			t.Errorf("%s: got  %s\nwant %s", name, got, want)
		}
	}

	l, warns := newLoader()
	c, err := l.Args([]string{"--if-env", "HOME", "--set", "h=%(_)", "--h2", "%(_)", "--endif", "--for=1 2", "--n", "%(_)", "--end-for"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(keyvals(c), " "), "h=/home/app h2=/home/app n=1 n=2"; got != want {
		t.Errorf("argv: got  %s\nwant %s", got, want)
	}

	// As uWSGI: a block left open at the end of a file takes the options
	// read after it, the command line's too.
	c, err = l.Args([]string{"--ini", p("open.ini"), "--socket", ":3031"})
	if err != nil {
		t.Fatal(err)
	}
	if got := keyvals(c); len(got) != 0 {
		t.Errorf("got %q, want nothing: the open if-exists block drops it all", got)
	}
	if len(*warns) != 1 || !strings.Contains((*warns)[0], "open.ini:2: if-exists = /nonexistent: block not closed") {
		t.Errorf("warnings %q", *warns)
	}
}

func TestIsLogicKey(t *testing.T) {
	for _, k := range []string{"if-exists", "ifenv", "for-glob", "endif", "end", "end-for", "if-not-hostname-match"} {
		if !config.IsLogicKey(k) {
			t.Errorf("IsLogicKey(%q) = false", k)
		}
	}
	for _, k := range []string{"include", "endif-x", "if", "socket"} {
		if config.IsLogicKey(k) {
			t.Errorf("IsLogicKey(%q) = true", k)
		}
	}
}
