package config_test

import (
	"strings"
	"testing"
)

// TestINIRulesAsUWSGI: the ini rules of issue 14, checked against uWSGI
// 2.0.21 ("uwsgi --show-config --ini" on the same text gives the same
// options): blank lines first, blanks stripped around keys and values
// (spaces, tabs, \r), the key split at the first '=', a line without '='
// is a key with an empty value (so unrendered Jinja lines are harmless
// keys; "%" followed by an unknown letter is an empty magic variable, so
// "{% if x %}" reads "{if x"), ';' and '#' start a comment only at the
// start of a line, no newline needed at the end.
func TestINIRulesAsUWSGI(t *testing.T) {
	text := "\n\n  \n[uwsgi]\n\t key1 =  a = b \r\nflag\n{% if x %}\n{{ var }}\n  ; comment\n# comment\n" +
		"k2 = v ; not comment # nor this\nempty =\n  spaced key   =\tv2\t\nlast = end"
	l, warns := newLoader()
	c, err := parseINIText(t, l, text)
	if err != nil {
		t.Fatal(err)
	}
	want := []kv{{"key1", "a = b", 5}, {"flag", "", 6}, {"{if x", "", 7}, {"{{ var }}", "", 8},
		{"k2", "v ; not comment # nor this", 11}, {"empty", "", 12}, {"spaced key", "v2", 13}, {"last", "end", 14}}
	wantKVs(t, c, want)
	if len(*warns) != 0 {
		t.Errorf("warnings %q", *warns)
	}
}

func TestINIRulesEdges(t *testing.T) {
	tests := []struct{ name, text, want, warn string }{
		{"only blank lines then a section", "\n\n\n[uwsgi]\na=1", "a=1", ""},
		{"CRLF file", "[uwsgi]\r\na = 1\r\nb\r\n", "a=1 b=", ""},
		{"no newline after a flag", "[uwsgi]\nmaster", "master=", ""},
		{"empty key dropped with a warning", "[uwsgi]\n= v\na=1", "a=1", "option without a name"},
		{"value keeps inner blanks and quotes", "[uwsgi]\nenv = A=\"x  y\"", `env=A="x  y"`, ""},
		{"repeated section headers merge", "[uwsgi]\na=1\n[other]\nb=2\n[uwsgi]\nc=3", "a=1 c=3", ""},
		// As uWSGI: the last character is dropped whatever it is.
		{"header without closing bracket", "[uwsgi\na=1\n[uwsgix\nb=2", "b=2", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, warns := newLoader()
			c, err := parseINIText(t, l, tc.text)
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
