package main

// Helpers of the tree, limits, files and frozen-vassal scenarios. Their
// names start with f1 so that other scenario files of this package cannot
// collide with them.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/cgroup"
)

// f1Stats is the part of the Emperor's stats JSON the scenarios read.
type f1Stats struct {
	Pid      int            `json:"pid"`
	Scanned  bool           `json:"scanned"`
	Vassals  []f1VassalStat `json:"vassals"`
	Counters struct {
		Spawns   uint64            `json:"spawns"`
		Restarts map[string]uint64 `json:"restarts"`
	} `json:"counters"`
}

type f1VassalStat struct {
	ID            string  `json:"id"`
	Pid           int     `json:"pid"`
	LastHeartbeat int64   `json:"last_heartbeat"`
	State         string  `json:"state"`
	Sub           string  `json:"sub"`
	Restarts      int     `json:"restarts"`
	LastExit      string  `json:"last_exit"`
	Reason        string  `json:"reason"`
	Penalty       float64 `json:"penalty"`
	Cgroup        *struct {
		Memory     int64  `json:"memory"`
		MemoryPeak int64  `json:"memory_peak"`
		Pids       int64  `json:"pids"`
		OOMKills   int64  `json:"oom_kills"`
		Limits     string `json:"limits"`
	} `json:"cgroup"`
}

// f1ReadStats reads and decodes the stats at addr.
func f1ReadStats(addr string) (*f1Stats, error) {
	b, err := Stats(addr)
	if err != nil {
		return nil, err
	}
	var s f1Stats
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("stats are not JSON: %w", err)
	}
	return &s, nil
}

// vassal returns the stats of the vassal named id, or nil.
func (s *f1Stats) vassal(id string) *f1VassalStat {
	for i := range s.Vassals {
		if s.Vassals[i].ID == id {
			return &s.Vassals[i]
		}
	}
	return nil
}

// f1CgroupParents are the directories an Emperor started by this process
// makes its vassal cgroups in (it inherits this process's cgroups).
func f1CgroupParents() ([]string, error) {
	h, err := cgroup.Open()
	if err != nil {
		return nil, err
	}
	return h.Parents(), nil
}

// f1VassalCgroups lists the vassal cgroup directories below parents that
// the Emperor with pid emperor made; with name set, only those of the
// vassal of that name.
func f1VassalCgroups(parents []string, emperor int, name string) []string {
	var out []string
	prefix := ""
	if name != "" {
		prefix = "vassal-" + cgroup.Name(name) + "-"
	}
	for _, p := range parents {
		entries, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
				continue
			}
			if owner, ok := cgroup.OwnerOf(e.Name()); ok && owner == emperor {
				out = append(out, filepath.Join(p, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out
}

// f1Procs reads the pids in a cgroup directory.
func f1Procs(dir string) []int {
	f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// f1ReadInt reads a number from a cgroup file (-1 when it cannot).
func f1ReadInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// f1ReadKey reads "key value" from a cgroup file (-1 when absent).
func f1ReadKey(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return -1
}

// f1KillAll SIGKILLs pids that still run (pids this scenario started or
// found in its own Emperor's cgroups or descendants).
func f1KillAll(pids []int) {
	for _, p := range pids {
		if Running(p) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// f1Alive lists those of pids that still run.
func f1Alive(pids []int) []int {
	var out []int
	for _, p := range pids {
		if Running(p) {
			out = append(out, p)
		}
	}
	return out
}

// f1Secs formats a duration in seconds with two decimals.
func f1Secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

// f1Serving waits until every url answers, or ctx ends; it returns how long
// it took and how many answered.
func f1Serving(ctx context.Context, urls []string) (time.Duration, int) {
	began := time.Now()
	up := make([]bool, len(urls))
	n := 0
	Poll(ctx, func() bool {
		for i, u := range urls {
			if !up[i] {
				if _, err := Get(u); err == nil {
					up[i] = true
					n++
				}
			}
		}
		return n == len(urls)
	})
	return time.Since(began), n
}

// f1ProcName is the command name of a process ("" when gone).
func f1ProcName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// f1Pgrp is a process's process group (0 when gone).
func f1Pgrp(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return 0
	}
	g, _ := strconv.Atoi(f[2])
	return g
}

// f1QuotedField reads key=value from a slog text line where the value may
// be quoted with spaces inside ("" when absent).
func f1QuotedField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	rest := line[i+len(key)+2:]
	if !strings.HasPrefix(rest, `"`) {
		v, _, _ := strings.Cut(rest, " ")
		return v
	}
	for j := 1; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			j++
		case '"':
			if v, err := strconv.Unquote(rest[:j+1]); err == nil {
				return v
			}
			return rest[1:j]
		}
	}
	return rest[1:]
}
