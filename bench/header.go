package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The header of the tables: the machine and the run's settings.

type header [][2]string

func (s *settings) header() header {
	var u unix.Utsname
	unix.Uname(&u)
	h := header{
		{"date", time.Now().Format(time.RFC1123)},
		{"Go runtime", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		{"kernel", unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Version[:])},
		{"CPU", fmt.Sprintf("%d × %s", runtime.NumCPU(), cpuModel())},
	}
	if avail, err := memAvailable(); err == nil {
		h = append(h, [2]string{"MemAvailable", fmt.Sprintf("%d MiB", avail>>20)})
	}
	h = append(h, [2]string{"uWSGI", s.uwsgi + " " + output(s.uwsgi, "--version")})
	if s.emperor != "" {
		ours := output(s.emperor, "--version")
		if st, err := os.Stat(s.emperor); err == nil {
			ours += ", built " + st.ModTime().Format(time.DateTime)
		}
		h = append(h, [2]string{"our Emperor", s.emperor + " " + ours})
	}
	h = append(h, [2]string{"settings", fmt.Sprintf("-n %s -reps %d -cold-reps %d -idle %v -only %s -base-port %d",
		intsString(s.sizes), s.reps, s.coldReps, s.idle, s.only, s.basePort)})
	h = append(h, [2]string{"load average", loadavg()})
	return h
}

func (h header) text() string {
	var b strings.Builder
	for _, kv := range h {
		fmt.Fprintf(&b, "%-13s %s\n", kv[0]+":", kv[1])
	}
	return b.String()
}

func (h header) markdown() string {
	var b strings.Builder
	for _, kv := range h {
		fmt.Fprintf(&b, "- %s: %s\n", kv[0], kv[1])
	}
	return b.String()
}

func output(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func intsString(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
