package cgroup

import (
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"64M": 64 << 20, "512k": 512 << 10, "1GiB": 1 << 30, "4096": 4096, "2gb": 2 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "-1", "0", "12X", "99999999999T"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q): no error", bad)
		}
	}
	if FormatSize(64<<20) != "64M" || FormatSize(1000) != "1000" {
		t.Errorf("FormatSize: %s %s", FormatSize(64<<20), FormatSize(1000))
	}
}

func TestLimitsSetMinMerge(t *testing.T) {
	var l Limits
	for k, v := range map[string]string{"memory": "64M", "pids": "50", "cpu-weight": "200", "cpu-quota": "50%"} {
		if err := l.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if l != (Limits{Memory: 64 << 20, Pids: 50, CPUWeight: 200, CPUQuota: 50}) {
		t.Errorf("Set: %+v", l)
	}
	if err := l.Set("cpu-weight", "20000"); err == nil {
		t.Error("cpu-weight 20000 accepted")
	}
	if err := l.Set("pids", "10000000"); err == nil {
		t.Error("pids 10000000 accepted: the kernel refuses pids.max above 4194304, so every spawn would fail")
	}
	if err := l.Set("swap", "1"); err == nil {
		t.Error("unknown key accepted")
	}
	tenant := Limits{Memory: 1 << 30, Pids: 10}
	if got := tenant.Min(Limits{Memory: 64 << 20, CPUQuota: 100}); got != (Limits{Memory: 64 << 20, Pids: 10, CPUQuota: 100}) {
		t.Errorf("Min = %+v: a tenant must not raise the Emperor's limit", got)
	}
	if got := (Limits{Memory: 1}).Merge(Limits{Pids: 2}); got != (Limits{Memory: 1, Pids: 2}) {
		t.Errorf("Merge = %+v", got)
	}
}

func TestOpenHybrid(t *testing.T) {
	procCgroup := "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n"
	mountinfo := `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	h, err := open(procCgroup, mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	if h.v2 != "/sys/fs/cgroup/unified" || h.v1["memory"] != "/sys/fs/cgroup/memory/process_api/abc" || h.v1["pids"] != "/sys/fs/cgroup/pids" {
		t.Errorf("hierarchy %+v", h)
	}
	// A container whose v2 mount shows only its own subtree.
	h, err = open("0::/system.slice/emperor.service\n", "50 1 0:40 /system.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
	if err != nil || h.v2 != "/sys/fs/cgroup/emperor.service" {
		t.Errorf("nested v2 mount: %+v, %v", h, err)
	}
	if _, err := open("0::/\n", ""); err == nil {
		t.Error("no mounts: no error")
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{"app.ini": "app.ini", "a/b c": "a_b_c", ".hidden": "v.hidden", "": "v"} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64M", "1GiB", "512k", "100", "1T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Errorf("round trip %q: %d -> %q -> %d, %v", s, n, FormatSize(n), back, err)
		}
	})
}

func FuzzParseProcCgroupAndMountinfo(f *testing.F) {
	f.Add("0::/\n4:memory:/a/b\n", "40 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
	f.Add("0::/system.slice/x.service\n", "50 1 0:40 /system.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
	f.Add("1:cpu,cpuacct:/\n", `31 30 0:28 / /sys/fs/cgroup/cpu\040x rw - cgroup cgroup rw,cpu,cpuacct`)
	f.Fuzz(func(t *testing.T, procCgroup, mountinfo string) {
		parseProcCgroup(procCgroup)
		for _, m := range parseMountinfo(mountinfo) {
			if m.dir == "" && m.root == "" && !m.v2 && len(m.options) == 0 {
				t.Errorf("empty mount parsed from %q", mountinfo)
			}
		}
	})
}
