package capabilities

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Set
	}{
		{"setuid,setgid", 1<<7 | 1<<6},
		{"CAP_NET_BIND_SERVICE", 1 << 10},
		{"net_bind_service 13", 1<<10 | 1<<13},
		{"21", 1 << 21},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %#x, %v; want %#x", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "fly", "41", "-1", ","} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
	if s, _ := Parse("setgid,setuid,net_bind_service"); s.String() != "setgid,setuid,net_bind_service" {
		t.Errorf("String = %q", s.String())
	}
	if _, err := Parse("setuid,fly"); err == nil || !strings.Contains(err.Error(), `"fly"`) {
		t.Errorf("error does not name the unknown capability: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"setuid,setgid", "cap_sys_admin", "10,13", "net_bind_service net_raw", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(set.String())
		if err != nil || again != set {
			t.Errorf("round trip of %q: %q -> %#x, %v", s, set.String(), again, err)
		}
	})
}
