package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/config"
)

// Each kind of setting reads a value as the Emperor always has, and a
// refusal names file, line and key, keeping a hint.
func TestSettingKinds(t *testing.T) {
	var (
		str  string
		list []string
		flag bool
		num  int
		dur  time.Duration
	)
	settings := map[string]config.Setting{
		"s": config.StringSetting("s", "", &str),
		"l": config.ListSetting("l", "", &list, "dir://"),
		"b": config.BoolSetting("b", "", &flag),
		"i": config.IntSetting("i", "", &num),
		"d": config.DurationSetting("d", "", &dur, time.Millisecond),
	}
	for _, c := range []struct{ key, value, err string }{
		{"s", " x ", ""},
		{"l", "/a", ""},
		{"l", " /b", ""},
		{"b", "yes", ""},
		{"i", "-3", ""},
		{"d", "250", ""},
		{"l", " ", "f.ini:2: l: needs a value"},
		{"b", "maybe", `f.ini:2: b: "maybe" is not a boolean (use true or false)`},
		{"i", "two", `f.ini:2: i: "two" is not an integer`},
		{"d", "-1", `f.ini:2: d: "-1" is not a non-negative integer`},
	} {
		err := config.ApplyOption(settings[c.key], config.Option{Key: c.key, Value: c.value, File: "f.ini", Line: 2})
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s = %q: %v", c.key, c.value, err)
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("%s = %q: error %v, want %q", c.key, c.value, err, c.err)
		}
	}
	if str != "x" || strings.Join(list, " ") != "dir:///a dir:///b" || !flag || num != -3 || dur != 250*time.Millisecond {
		t.Errorf("got %q %q %v %d %s", str, list, flag, num, dur)
	}
}
