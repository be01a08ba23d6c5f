package capabilities

import (
	"strconv"
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

// TestParse_KernelLastCap: a capability the running kernel does not have,
// by number or by name, is refused with a message that says so.
func TestParse_KernelLastCap(t *testing.T) {
	last := LastCap()
	if got, err := Parse(strconv.Itoa(last)); err != nil || !got.Has(last) {
		t.Errorf("Parse(%d), the kernel's last capability: %v, %v", last, got, err)
	}
	_, err := Parse(strconv.Itoa(last + 1))
	if err == nil || !strings.Contains(err.Error(), "0 to "+strconv.Itoa(last)) || !strings.Contains(err.Error(), "cap_last_cap") {
		t.Errorf("Parse(%d): %v, want a refusal naming the kernel's last capability", last+1, err)
	}
	// On a kernel whose last capability is 37 (audit_read, Linux 4.x),
	// perfmon and bpf do not exist.
	for _, in := range []string{"bpf", "CAP_PERFMON", "39"} {
		_, err := parseUpTo("setuid,"+in, 37)
		if err == nil || !strings.Contains(err.Error(), in) || !strings.Contains(err.Error(), "37") {
			t.Errorf("parseUpTo(%q, 37): %v, want a refusal naming %s and 37", in, err, in)
		}
	}
	if got, err := parseUpTo("audit_read,10", 37); err != nil || len(got) != 2 || got[0] != 37 || got[1] != 10 {
		t.Errorf("parseUpTo(audit_read,10, 37) = %v, %v; want [37 10]", got, err)
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
