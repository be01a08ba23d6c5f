// Package cgroup puts each vassal in a cgroup of its own, below the
// Emperor's, and takes it away again: creation, limits, membership, usage,
// the OOM count and killing a whole tree.
//
// cgroup v2 is used wherever a cgroup2 hierarchy is mounted, for membership,
// clone-into-cgroup and cgroup.kill; each limit goes to v2 when the v2
// hierarchy offers its controller, otherwise to the v1 hierarchy of that
// controller (hybrid hosts mount memory, pids and cpu as v1 next to a v2
// hierarchy with no controllers).
package cgroup

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits are the resource limits of one vassal's cgroup. Zero means no
// limit.
type Limits struct {
	// Memory is the memory limit in bytes (v2 memory.max, v1
	// memory.limit_in_bytes); a vassal exceeding it is OOM-killed.
	Memory int64
	// Pids is the most tasks the cgroup may hold (pids.max).
	Pids int64
	// CPUWeight is the relative CPU share, 1-10000, 100 being the default
	// (v2 cpu.weight; v1 cpu.shares = weight*1024/100).
	CPUWeight int64
	// CPUQuota is the share of one CPU the cgroup may use per period,
	// in percent (150 = one and a half CPUs) (v2 cpu.max, v1
	// cpu.cfs_quota_us over a 100 ms period).
	CPUQuota int64
}

// IsZero reports whether l sets no limit.
func (l Limits) IsZero() bool { return l == Limits{} }

// Min returns, limit by limit, the tighter of l and cap: a vassal may lower
// the Emperor's defaults, never raise them.
func (l Limits) Min(cap Limits) Limits {
	m := func(a, b int64) int64 {
		switch {
		case a == 0:
			return b
		case b == 0:
			return a
		}
		return min(a, b)
	}
	return Limits{Memory: m(l.Memory, cap.Memory), Pids: m(l.Pids, cap.Pids),
		CPUWeight: m(l.CPUWeight, cap.CPUWeight), CPUQuota: m(l.CPUQuota, cap.CPUQuota)}
}

// Merge returns l with each limit o sets replacing l's.
func (l Limits) Merge(o Limits) Limits {
	pick := func(a, b int64) int64 {
		if b != 0 {
			return b
		}
		return a
	}
	return Limits{Memory: pick(l.Memory, o.Memory), Pids: pick(l.Pids, o.Pids),
		CPUWeight: pick(l.CPUWeight, o.CPUWeight), CPUQuota: pick(l.CPUQuota, o.CPUQuota)}
}

// String lists the limits set, as the options that set them read.
func (l Limits) String() string {
	var parts []string
	if l.Memory > 0 {
		parts = append(parts, "memory="+FormatSize(l.Memory))
	}
	if l.Pids > 0 {
		parts = append(parts, "pids="+strconv.FormatInt(l.Pids, 10))
	}
	if l.CPUWeight > 0 {
		parts = append(parts, "cpu-weight="+strconv.FormatInt(l.CPUWeight, 10))
	}
	if l.CPUQuota > 0 {
		parts = append(parts, "cpu-quota="+strconv.FormatInt(l.CPUQuota, 10)+"%")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Set applies one option, by the key uWSGI-style configs use for it:
// "memory" (a size: 64M, 1G, bytes), "pids", "cpu-weight" or "cpu-quota"
// (percent of one CPU, with or without %). The error names the key and the
// rule broken.
func (l *Limits) Set(key, value string) error {
	value = strings.TrimSpace(value)
	var err error
	switch key {
	case "memory":
		l.Memory, err = ParseSize(value)
	case "pids":
		l.Pids, err = positive(value)
		if err == nil && l.Pids > maxPids {
			err = fmt.Errorf("want at most %d (the kernel's most pids)", maxPids)
		}
	case "cpu-weight":
		l.CPUWeight, err = positive(value)
		if err == nil && l.CPUWeight > 10000 {
			err = errors.New("want 1 to 10000")
		}
	case "cpu-quota":
		l.CPUQuota, err = positive(strings.TrimSuffix(value, "%"))
	default:
		return fmt.Errorf("cgroup limit %q: unknown (known: memory, pids, cpu-weight, cpu-quota)", key)
	}
	if err != nil {
		return fmt.Errorf("cgroup limit %s = %q: %w", key, value, err)
	}
	return nil
}

// maxPids is the kernel's PID_MAX_LIMIT on 64-bit: pids.max refuses more.
const maxPids = 4 << 20

func positive(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive integer")
	}
	return n, nil
}

// ParseSize reads a size in bytes with an optional K, M, G or T suffix
// (powers of 1024; a trailing B or iB is allowed): "64M", "512k", "1GiB".
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with K, M, G or T", s)
	}
	return n * mult, nil
}

// FormatSize prints bytes in the largest unit that divides them exactly.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s     string
		shift uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// Usage is what a vassal's cgroup used, as stats report it.
type Usage struct {
	// Memory in bytes now, and the most it reached (v1, or v2 memory.peak
	// where the kernel has it).
	Memory     int64 `json:"memory"`
	MemoryPeak int64 `json:"memory_peak"`
	// Pids is the number of tasks; PidsRefused counts the forks the pids
	// limit refused (pids.events "max"): a fork bomb hitting its limit.
	Pids        int64 `json:"pids"`
	PidsRefused int64 `json:"pids_refused"`
	// CPUUsec is the CPU time, in µs, used by every process that ran in the
	// cgroup.
	CPUUsec int64 `json:"cpu_usec"`
	// OOMKills counts processes the kernel killed for the memory limit.
	OOMKills int64 `json:"oom_kills"`
	// Limits as set.
	Limits string `json:"limits"`
}

// parseProcCgroup parses /proc/self/cgroup: the v2 path ("" when the process
// has none) and the v1 path of each controller.
func parseProcCgroup(text string) (v2 string, hasV2 bool, v1 map[string]string) {
	v1 = map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2, hasV2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c != "" {
				v1[c] = parts[2]
			}
		}
	}
	return v2, hasV2, v1
}

// mount is one cgroup filesystem mount.
type mount struct {
	dir     string   // where it is mounted
	root    string   // the cgroup path shown at dir
	v2      bool     // cgroup2
	options []string // super options: the v1 controllers
}

// parseMountinfo returns the cgroup and cgroup2 mounts in /proc/self/mountinfo.
func parseMountinfo(text string) []mount {
	var out []mount
	for _, line := range strings.Split(text, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		switch g[0] {
		case "cgroup2":
			out = append(out, mount{dir: unescape(f[4]), root: unescape(f[3]), v2: true})
		case "cgroup":
			out = append(out, mount{dir: unescape(f[4]), root: unescape(f[3]), options: strings.Split(g[2], ",")})
		}
	}
	return out
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Name makes a cgroup directory name from a vassal's name: characters other
// than letters, digits, '.', '-' and '_' become '_', and it is cut to a
// length every filesystem accepts.
func Name(vassal string) string {
	b := []byte(vassal)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) > 200 {
		b = b[:200]
	}
	if len(b) == 0 || b[0] == '.' {
		b = append([]byte("v"), b...)
	}
	return string(b)
}
