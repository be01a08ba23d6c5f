package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/config"
)

// parseCase is one config text and what reading it gives.
type parseCase struct {
	name    string
	file    string // name given to Parse, may carry :section
	text    string
	want    []kv
	warn    string // substring of the one expected warning, "" for none
	wantErr []string
	section string // Loader.Section
}

func runParseCases(t *testing.T, format config.Format, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, warns := newLoader()
			l.Section = tc.section
			c, err := l.Parse(format, tc.file, []byte(tc.text))
			if tc.wantErr != nil {
				wantError(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantKVs(t, c, tc.want)
			switch {
			case tc.warn == "" && len(*warns) > 0:
				t.Errorf("unexpected warnings %q", *warns)
			case tc.warn != "" && (len(*warns) != 1 || !strings.Contains((*warns)[0], tc.warn)):
				t.Errorf("warnings %q, want one containing %q", *warns, tc.warn)
			}
		})
	}
}

func TestParseINI(t *testing.T) {
	runParseCases(t, config.INI, []parseCase{
		{name: "basic", file: "app.ini", text: "[uwsgi]\nsocket = :3031\nmaster\nprocesses=4\n",
			want: []kv{{"socket", ":3031", 2}, {"master", "", 3}, {"processes", "4", 4}}},
		{name: "comments only at line start", file: "app.ini",
			text: "; comment\n# comment\n[uwsgi]\n   ; indented comment\nfoo = bar ; not a comment\nurl = http://x/#frag\n",
			want: []kv{{"foo", "bar ; not a comment", 5}, {"url", "http://x/#frag", 6}}},
		{name: "repeated keys keep order", file: "app.ini", text: "[uwsgi]\nenv = A=1\nsocket = a\nenv = B=2\nenv = A=3\n",
			want: []kv{{"env", "A=1", 2}, {"socket", "a", 3}, {"env", "B=2", 4}, {"env", "A=3", 5}}},
		{name: "split at first equals", file: "app.ini", text: "[uwsgi]\nenv = PATH=/bin:/usr/bin\nroute = ^/a= goto:x\n",
			want: []kv{{"env", "PATH=/bin:/usr/bin", 2}, {"route", "^/a= goto:x", 3}}},
		{name: "section selection", file: "app.ini:zerg", text: "[uwsgi]\na = 1\n[zerg]\nb = 2\n[uwsgi]\nc = 3\n[zerg]\nd = 4\n",
			want: []kv{{"b", "2", 4}, {"d", "4", 8}}},
		{name: "options before any section are ignored", file: "app.ini", text: "a = 1\n[uwsgi]\nb = 2\n",
			want: []kv{{"b", "2", 3}}},
		{name: "crlf tabs and spaces", file: "app.ini", text: "\t[uwsgi]  \r\n\tkey\t=\tvalue\t\r\n  flag  \r\n",
			want: []kv{{"key", "value", 2}, {"flag", "", 3}}},
		{name: "header brackets not checked", file: "app.ini", text: "[uwsgi)\nk = v\n[uwsgi\nx = y\n",
			want: []kv{{"k", "v", 2}}},
		{name: "empty value", file: "app.ini", text: "[uwsgi]\nk =\n", want: []kv{{"k", "", 2}}},
		{name: "missing section warns", file: "app.ini:nope", text: "[uwsgi]\nk = v\n", warn: "app.ini: section [nope] not found"},
		{name: "empty file warns", file: "app.ini", text: "", warn: "section [uwsgi] not found"},
		{name: "nameless option dropped", file: "app.ini", text: "[uwsgi]\n= v\nk = v\n", want: []kv{{"k", "v", 3}},
			warn: "app.ini:2: option without a name"},
		{name: "loader default section", file: "emperor.ini", section: "emperor", text: "[uwsgi]\na = 1\n[emperor]\nb = 2\n",
			want: []kv{{"b", "2", 4}}},
		{name: "no trailing newline", file: "app.ini", text: "[uwsgi]\nk = v", want: []kv{{"k", "v", 2}}},
	})
}

func TestParseXML(t *testing.T) {
	runParseCases(t, config.XML, []parseCase{
		{name: "root uwsgi", file: "app.xml", text: "<uwsgi>\n  <socket> :3031 </socket>\n  <master/>\n  <vacuum></vacuum>\n</uwsgi>\n",
			want: []kv{{"socket", ":3031", 2}, {"master", "", 3}, {"vacuum", "", 4}}},
		{name: "first uwsgi child of root", file: "app.xml",
			text: "<?xml version=\"1.0\"?>\n<cfg>\n<other><a>1</a></other>\n<uwsgi id=\"one\">\n<a>2</a>\n</uwsgi>\n<uwsgi id=\"two\"><a>3</a></uwsgi>\n</cfg>\n",
			want: []kv{{"a", "2", 5}}},
		{name: "section picks id and skips other ids", file: "app.xml:two",
			text: "<cfg>\n<uwsgi id=\"one\"><a>1</a></uwsgi>\n<uwsgi id=\"two\">\n<a>2</a>\n<b id=\"two\">yes</b>\n<b id=\"one\">no</b>\n</uwsgi>\n</cfg>",
			want: []kv{{"a", "2", 4}, {"b", "yes", 5}}},
		{name: "loader section is an id", file: "app.xml", section: "two",
			text: "<cfg><uwsgi id=\"one\"><a>1</a></uwsgi><uwsgi id=\"two\"><a>2</a></uwsgi></cfg>",
			want: []kv{{"a", "2", 1}}},
		{name: "repeated elements keep order", file: "app.xml",
			text: "<uwsgi>\n<env>A=1</env>\n<socket>s</socket>\n<env>B=2</env>\n</uwsgi>",
			want: []kv{{"env", "A=1", 2}, {"socket", "s", 3}, {"env", "B=2", 4}}},
		{name: "cdata comments and entities", file: "app.xml",
			text: "<uwsgi><!-- c --><route><![CDATA[^/a<b]]></route><env>A=&quot;x&amp;y&quot;</env></uwsgi>",
			want: []kv{{"route", "^/a<b", 1}, {"env", "A=\"x&y\"", 1}}},
		{name: "latin1 declared", file: "app.xml",
			text: "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><uwsgi><name>caf\xe9</name></uwsgi>",
			want: []kv{{"name", "café", 1}}},
		{name: "missing id warns", file: "app.xml:zerg", text: "<uwsgi><a>1</a></uwsgi>", warn: `no <uwsgi id="zerg"> element`},
		{name: "no uwsgi warns", file: "app.xml", text: "<config><a>1</a></config>", warn: "no <uwsgi> element"},
		{name: "malformed", file: "app.xml", text: "<uwsgi>\n<socket>x</sock>\n</uwsgi>", wantErr: []string{"app.xml:2: xml:"}},
		{name: "unclosed", file: "app.xml", text: "<uwsgi>\n<socket>x</socket>\n", wantErr: []string{"app.xml:3: xml:"}},
		{name: "empty", file: "app.xml", text: "", wantErr: []string{"app.xml:1: xml: no root element"}},
		{name: "two roots", file: "app.xml", text: "<uwsgi/>\n<uwsgi/>", wantErr: []string{"app.xml:2:", "extra element"}},
		{name: "text outside root", file: "app.xml", text: "<uwsgi/>\njunk", wantErr: []string{"app.xml:", "text outside"}},
		{name: "unknown encoding", file: "app.xml", text: "<?xml version=\"1.0\" encoding=\"koi8-r\"?><uwsgi/>", wantErr: []string{"app.xml:1:", "koi8-r"}},
	})
}

func TestParseYAML(t *testing.T) {
	runParseCases(t, config.YAML, []parseCase{
		{name: "scalars", file: "app.yaml", text: "uwsgi:\n  socket: :3031\n  master: true\n  processes: 4\n  vacuum:\n  empty: ''\n",
			want: []kv{{"socket", ":3031", 2}, {"master", "true", 3}, {"processes", "4", 4}, {"vacuum", "", 5}, {"empty", "", 6}}},
		{name: "sequence gives one option each", file: "app.yaml", text: "uwsgi:\n  env:\n    - A=1\n    - B=2\n  socket: [a, b]\n",
			want: []kv{{"env", "A=1", 3}, {"env", "B=2", 4}, {"socket", "a", 5}, {"socket", "b", 5}}},
		{name: "repeated keys keep order", file: "app.yaml", text: "uwsgi:\n  env: A=1\n  socket: s\n  env: B=2\n",
			want: []kv{{"env", "A=1", 2}, {"socket", "s", 3}, {"env", "B=2", 4}}},
		{name: "section selection", file: "app.yaml:zerg", text: "uwsgi:\n  a: 1\nzerg:\n  b: 2\n",
			want: []kv{{"b", "2", 4}}},
		{name: "merge key", file: "app.yaml", text: "base: &base\n  master: true\n  vacuum: ~\nuwsgi:\n  <<: *base\n  socket: s\n",
			want: []kv{{"master", "true", 2}, {"vacuum", "", 3}, {"socket", "s", 6}}},
		{name: "alias value", file: "app.yaml", text: "x: &s /tmp/a.sock\nuwsgi:\n  socket: *s\n",
			want: []kv{{"socket", "/tmp/a.sock", 3}}},
		{name: "null section", file: "app.yaml", text: "uwsgi:\n"},
		{name: "missing section warns", file: "app.yaml:zerg", text: "uwsgi:\n  a: 1\n", warn: "app.yaml: section [zerg] not found"},
		{name: "empty document warns", file: "app.yaml", text: "# nothing\n", warn: "section [uwsgi] not found"},
		{name: "nested mapping refused", file: "app.yaml", text: "uwsgi:\n  a: 1\n  b:\n    c: d\n", wantErr: []string{"app.yaml:4: b: yaml: a mapping is not an option value"}},
		{name: "nested list refused", file: "app.yaml", text: "uwsgi:\n  a:\n    - [x]\n", wantErr: []string{"app.yaml:3: a: yaml: list items must be scalars"}},
		{name: "top level list refused", file: "app.yaml", text: "- a\n- b\n", wantErr: []string{"app.yaml:1: yaml: the top level must be a mapping"}},
		{name: "section not a mapping", file: "app.yaml", text: "uwsgi: 3\n", wantErr: []string{"app.yaml:1:", "must be a mapping of options"}},
		{name: "malformed", file: "app.yaml", text: "uwsgi:\n  a: b\n c: d\n", wantErr: []string{"app.yaml:2: yaml: did not find expected key"}},
		{name: "bad indentation", file: "app.yaml", text: "uwsgi:\n  a: [b\n", wantErr: []string{"app.yaml:", "yaml:"}},
	})
}

func TestParseJSON(t *testing.T) {
	runParseCases(t, config.JSON, []parseCase{
		{name: "types", file: "app.json",
			text: "{\"uwsgi\": {\n\"socket\": \":3031\",\n\"master\": true,\n\"threads\": false,\n\"vacuum\": null,\n\"processes\": 4,\n\"harakiri\": 30.5,\n\"big\": 1e3\n}}",
			want: []kv{{"socket", ":3031", 2}, {"master", "1", 3}, {"threads", "0", 4}, {"vacuum", "0", 5}, {"processes", "4", 6}, {"harakiri", "30.5", 7}, {"big", "1e3", 8}}},
		{name: "arrays give one option each", file: "app.json", text: "{\"uwsgi\": {\"env\": [\"A=1\",\n\"B=2\", 3, true]}}",
			want: []kv{{"env", "A=1", 1}, {"env", "B=2", 2}, {"env", "3", 2}, {"env", "1", 2}}},
		{name: "duplicate keys keep order", file: "app.json", text: "{\"uwsgi\": {\"env\": \"A\", \"socket\": \"s\", \"env\": \"B\"}}",
			want: []kv{{"env", "A", 1}, {"socket", "s", 1}, {"env", "B", 1}}},
		{name: "other sections skipped", file: "app.json:zerg",
			text: "{\"uwsgi\": {\"a\": {\"deep\": [1, {\"x\": []}]}},\n \"zerg\": {\"b\": \"2\"}, \"tail\": [1,2]}",
			want: []kv{{"b", "2", 2}}},
		{name: "repeated section", file: "app.json", text: "{\"uwsgi\": {\"a\": 1}, \"uwsgi\": {\"b\": 2}}",
			want: []kv{{"a", "1", 1}, {"b", "2", 1}}},
		{name: "missing section warns", file: "app.json", text: "{\"zerg\": {}}", warn: "section [uwsgi] not found"},
		{name: "nested object refused", file: "app.json", text: "{\"uwsgi\": {\n\"a\": {\"b\": 1}}}", wantErr: []string{"app.json:2: a: json: an object is not an option value"}},
		{name: "nested array refused", file: "app.json", text: "{\"uwsgi\": {\"a\": [\n[1]]}}", wantErr: []string{"app.json:2: a: json: list items"}},
		{name: "section not an object", file: "app.json", text: "{\"uwsgi\": [1]}", wantErr: []string{"app.json:1:", "must be an object"}},
		{name: "top level not an object", file: "app.json", text: "[1]", wantErr: []string{"app.json:1: json: the top level must be an object"}},
		{name: "syntax error line", file: "app.json", text: "{\n\"uwsgi\": {\n\"a\": 1,\n}\n}", wantErr: []string{"app.json:4: json: invalid character"}},
		{name: "truncated", file: "app.json", text: "{\n\"uwsgi\": {\n\"a\": 1", wantErr: []string{"app.json:3: json: unexpected end of input"}},
		{name: "empty", file: "app.json", text: "", wantErr: []string{"app.json:1: json:"}},
		{name: "trailing data", file: "app.json", text: "{}\n{}", wantErr: []string{"app.json:2: json: unexpected data"}},
	})
}

// TestTestdata reads the seed configs of every format and checks they agree.
func TestTestdata(t *testing.T) {
	for _, name := range []string{"testdata/app.ini", "testdata/app.xml", "testdata/app.yaml", "testdata/app.json"} {
		t.Run(name, func(t *testing.T) {
			l, warns := newLoader()
			f, _ := config.FormatOf(name)
			c, err := l.Load(f, name)
			if err != nil {
				t.Fatal(err)
			}
			if len(*warns) > 0 {
				t.Errorf("warnings: %q", *warns)
			}
			if got, _ := c.Get("socket"); got != "/run/uwsgi/app.sock" {
				t.Errorf("socket = %q", got)
			}
			if got, _ := c.Get("chdir"); got != "/srv/app" {
				t.Errorf("chdir = %q", got)
			}
			if n, err := c.Int("processes", 1); err != nil || n != 4 {
				t.Errorf("processes = %d, %v", n, err)
			}
			if b, err := c.Bool("master"); err != nil || !b {
				t.Errorf("master = %v, %v", b, err)
			}
			if b, err := c.Bool("vacuum"); err != nil || (!b && f != config.JSON) {
				t.Errorf("vacuum = %v, %v", b, err)
			}
			if got := c.All("env"); len(got) != 2 || got[1] != "LANG=en_US.UTF-8" {
				t.Errorf("env = %q", got)
			}
			z, err := l.Load(f, name+":zerg")
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := z.Get("zerg"); got != "/run/uwsgi/app-broodlord.sock" {
				t.Errorf("zerg = %q", got)
			}
			if got := z.All("processes"); !reflect.DeepEqual(got, []string{"2"}) {
				t.Errorf("zerg processes = %q", got)
			}
		})
	}
}
