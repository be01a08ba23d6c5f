// Package capabilities names Linux capabilities as uWSGI's cap and
// emperor-cap options do ("setuid,net_bind_service" or numbers) and applies
// a kept set to the calling thread: bounding set, permitted, effective,
// inheritable and ambient.
package capabilities

import (
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
)

// Set is a set of capabilities, bit n for capability number n.
type Set uint64

// names are the capabilities by number, as uWSGI names them (its
// uwsgi_cap table: the kernel's CAP_ names, lower case, without CAP_).
var names = []string{
	0: "chown", 1: "dac_override", 2: "dac_read_search", 3: "fowner", 4: "fsetid",
	5: "kill", 6: "setgid", 7: "setuid", 8: "setpcap", 9: "linux_immutable",
	10: "net_bind_service", 11: "net_broadcast", 12: "net_admin", 13: "net_raw",
	14: "ipc_lock", 15: "ipc_owner", 16: "sys_module", 17: "sys_rawio",
	18: "sys_chroot", 19: "sys_ptrace", 20: "sys_pacct", 21: "sys_admin",
	22: "sys_boot", 23: "sys_nice", 24: "sys_resource", 25: "sys_time",
	26: "sys_tty_config", 27: "mknod", 28: "lease", 29: "audit_write",
	30: "audit_control", 31: "setfcap", 32: "mac_override", 33: "mac_admin",
	34: "syslog", 35: "wake_alarm", 36: "block_suspend", 37: "audit_read",
	38: "perfmon", 39: "bpf", 40: "checkpoint_restore",
}

// Last is the highest capability number this package names.
const Last = 40

// capLastCap is where the kernel tells its highest capability number.
const capLastCap = "/proc/sys/kernel/cap_last_cap"

// LastCap is the running kernel's highest capability number (read from
// /proc/sys/kernel/cap_last_cap), or Last when that cannot be read. It is
// at most 63, the highest a Set holds.
func LastCap() int {
	b, err := os.ReadFile(capLastCap)
	if err != nil {
		return Last
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return Last
	}
	return min(n, 63)
}

// Parse reads a comma (or space) separated list of capabilities: names as
// uWSGI spells them, with or without "cap_", in any case, or numbers. Every
// capability must exist in the running kernel (see LastCap). An unknown
// name, a number out of range, a capability newer than the kernel or an
// empty list is an error naming the culprit.
func Parse(list string) (Set, error) {
	nums, err := ParseList(list)
	if err != nil {
		return 0, err
	}
	var s Set
	for _, c := range nums {
		s |= 1 << c
	}
	return s, nil
}

// ParseList is Parse returning the capability numbers in the order the
// list gives them.
func ParseList(list string) ([]int, error) { return parseUpTo(list, LastCap()) }

// parseUpTo is ParseList for a kernel whose last capability is last.
func parseUpTo(list string, last int) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		c, err := parseOne(f, last)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty capability list")
	}
	return out, nil
}

// parseOne reads one capability, a name or a number, up to last.
func parseOne(f string, last int) (int, error) {
	name := strings.TrimPrefix(strings.ToLower(f), "cap_")
	if num, err := strconv.Atoi(name); err == nil {
		if num < 0 || num > last {
			return 0, fmt.Errorf("capability %s: this kernel has capabilities 0 to %d (%s)", f, last, capLastCap)
		}
		return num, nil
	}
	c, ok := Lookup(name)
	if !ok {
		return 0, fmt.Errorf("unknown capability %q (known: %s)", f, strings.Join(names, ", "))
	}
	if c > last {
		return 0, fmt.Errorf("capability %s is number %d, newer than this kernel, whose last is %d (%s)", f, c, last, capLastCap)
	}
	return c, nil
}

// Lookup returns the number of a capability named as uWSGI does.
func Lookup(name string) (int, bool) {
	name = strings.TrimPrefix(strings.ToLower(name), "cap_")
	for i, n := range names {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

// Has reports whether s holds capability c.
func (s Set) Has(c int) bool { return c >= 0 && c < 64 && s&(1<<c) != 0 }

// List returns the capability numbers in s, ascending.
func (s Set) List() []int {
	out := make([]int, 0, bits.OnesCount64(uint64(s)))
	for c := 0; c < 64; c++ {
		if s.Has(c) {
			out = append(out, c)
		}
	}
	return out
}

// String lists s by name, comma separated ("none" when empty).
func (s Set) String() string {
	var out []string
	for _, c := range s.List() {
		if c < len(names) {
			out = append(out, names[c])
		} else {
			out = append(out, strconv.Itoa(c))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}
