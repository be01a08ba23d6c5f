package cgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Hierarchy is where the Emperor creates vassal cgroups: below its own
// cgroup in the v2 hierarchy and in each v1 controller hierarchy it needs.
type Hierarchy struct {
	// v2 is the directory of the Emperor's own v2 cgroup ("" without v2).
	v2 string
	// v2Controllers are those the v2 cgroup can hand to its children.
	v2Controllers map[string]bool
	// v1 maps a v1 controller (memory, pids, cpu) to the directory of the
	// Emperor's own cgroup in its hierarchy.
	v1 map[string]string
	// seq makes names unique; touched only by the goroutine creating groups
	// (the spawner).
	seq uint64
	// companions move to the Emperor's leaf with it (sweep_linux.go).
	companions []int
}

// Open finds the Emperor's own cgroups from /proc/self/cgroup and
// /proc/self/mountinfo. With neither a v2 hierarchy nor any v1 controller
// it returns an error saying so.
func Open() (*Hierarchy, error) {
	pc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	return open(string(pc), string(mi))
}

func open(procCgroup, mountinfo string) (*Hierarchy, error) {
	v2path, hasV2, v1paths := parseProcCgroup(procCgroup)
	h := &Hierarchy{v1: map[string]string{}, v2Controllers: map[string]bool{}}
	for _, m := range parseMountinfo(mountinfo) {
		if m.v2 && hasV2 && h.v2 == "" {
			if dir, ok := below(m, v2path); ok {
				h.v2 = dir
			}
			continue
		}
		for _, c := range m.options {
			if c != "memory" && c != "pids" && c != "cpu" {
				continue
			}
			if _, seen := h.v1[c]; seen {
				continue
			}
			if p, ok := v1paths[c]; ok {
				if dir, ok := below(m, p); ok {
					h.v1[c] = dir
				}
			}
		}
	}
	if h.v2 != "" {
		if b, err := os.ReadFile(filepath.Join(h.v2, "cgroup.controllers")); err == nil {
			for _, c := range strings.Fields(string(b)) {
				h.v2Controllers[c] = true
			}
		}
	}
	if h.v2 == "" && len(h.v1) == 0 {
		return nil, errors.New("cgroup: no cgroup2 mount and no v1 memory, pids or cpu hierarchy found")
	}
	return h, nil
}

// below maps a cgroup path onto a mount: the directory where it appears.
func below(m mount, path string) (string, bool) {
	rel, err := filepath.Rel(m.root, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return filepath.Join(m.dir, rel), true
}

// String describes the hierarchy for logs.
func (h *Hierarchy) String() string {
	var parts []string
	if h.v2 != "" {
		parts = append(parts, "v2 "+h.v2)
	}
	for _, c := range []string{"memory", "pids", "cpu"} {
		if d, ok := h.v1[c]; ok && !h.v2Controllers[c] {
			parts = append(parts, "v1 "+c+" "+d)
		}
	}
	return strings.Join(parts, ", ")
}

// V2 reports whether vassal cgroups have a v2 directory (so cgroup.kill
// and clone-into-cgroup can work).
func (h *Hierarchy) V2() bool { return h.v2 != "" }

// Group is one vassal's cgroup: a directory in the v2 hierarchy and one in
// each v1 hierarchy holding one of its limits.
type Group struct {
	// V2 is the v2 directory ("" without v2).
	V2 string
	// V1 maps a v1 controller to the group's directory in it.
	V1 map[string]string
	// Limits as applied.
	Limits Limits

	usage atomic.Pointer[sampledUsage] // the last Usage read, for RecentUsage
}

// sampledUsage is a Usage and when it was read.
type sampledUsage struct {
	u  Usage
	at time.Time
}

// RecentUsage is Usage read at most maxAge ago: the stats and metrics of
// thousands of vassals would otherwise read seven files per vassal for
// every answer (10,000 vassals: about a second). Safe for concurrent use.
func (g *Group) RecentUsage(maxAge time.Duration) Usage {
	now := time.Now()
	if c := g.usage.Load(); c != nil && now.Sub(c.at) < maxAge {
		return c.u
	}
	u := g.Usage()
	g.usage.Store(&sampledUsage{u: u, at: now})
	return u
}

// LimitedInV1 reports whether one of the group's limits lives in a v1
// hierarchy, which a process joins only after it started.
func (g *Group) LimitedInV1() bool {
	for _, c := range controllersFor(g.Limits) {
		if _, ok := g.V1[c]; ok {
			return true
		}
	}
	return false
}

// controllersFor lists the controllers limits need.
func controllersFor(l Limits) []string {
	var cs []string
	if l.Memory > 0 {
		cs = append(cs, "memory")
	}
	if l.Pids > 0 {
		cs = append(cs, "pids")
	}
	if l.CPUWeight > 0 || l.CPUQuota > 0 {
		cs = append(cs, "cpu")
	}
	return cs
}

// Create makes a new cgroup for a vassal named name, with limits l. The
// memory controller is always joined where it is v1, so usage can be
// reported. A limit whose controller no hierarchy offers is an error.
func (h *Hierarchy) Create(name string, l Limits) (_ *Group, retErr error) {
	g := &Group{V1: map[string]string{}, Limits: l}
	defer func() {
		if retErr != nil {
			g.rmdirs()
		}
	}()
	wanted := controllersFor(l)
	if !contains(wanted, "memory") {
		wanted = append(wanted, "memory") // for usage and the OOM count
	}
	base := ""
	for {
		h.seq++
		base = fmt.Sprintf("vassal-%s-%d-%d", Name(name), os.Getpid(), h.seq)
		if h.v2 == "" {
			break
		}
		err := os.Mkdir(filepath.Join(h.v2, base), 0o755)
		if err == nil {
			g.V2 = filepath.Join(h.v2, base)
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	if g.V2 != "" {
		var need []string
		for _, c := range wanted {
			if h.v2Controllers[c] {
				need = append(need, "+"+c)
			}
		}
		if len(need) > 0 {
			// The v2 cgroup hands these controllers to its children; a
			// cgroup with processes cannot, so the Emperor moves itself
			// into a leaf once.
			if err := h.delegate(need); err != nil {
				return nil, err
			}
		}
	}
	for _, c := range wanted {
		if g.V2 != "" && h.v2Controllers[c] {
			continue
		}
		parent, ok := h.v1[c]
		if !ok {
			if c == "memory" && l.Memory == 0 {
				continue // only wanted for usage
			}
			return nil, fmt.Errorf("cgroup: no %s controller (neither cgroup v2 nor v1 offers it)", c)
		}
		dir := filepath.Join(parent, base)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		g.V1[c] = dir
	}
	if err := g.apply(h, l); err != nil {
		return nil, err
	}
	return g, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// delegate enables controllers for the children of the Emperor's v2 cgroup.
// When the cgroup holds processes (EBUSY), the Emperor moves itself to the
// leaf "emperor" first, as the no-internal-processes rule requires.
func (h *Hierarchy) delegate(ctrls []string) error {
	sub := filepath.Join(h.v2, "cgroup.subtree_control")
	err := os.WriteFile(sub, []byte(strings.Join(ctrls, " ")), 0o644)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("cgroup: enable %s: %w", strings.Join(ctrls, " "), err)
	}
	leaf := filepath.Join(h.v2, "emperor")
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cgroup: %w", err)
	}
	for _, pid := range append([]int{os.Getpid()}, h.companions...) {
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("cgroup: move process %d of the Emperor to %s: %w", pid, leaf, err)
		}
	}
	if err := os.WriteFile(sub, []byte(strings.Join(ctrls, " ")), 0o644); err != nil {
		return fmt.Errorf("cgroup: enable %s: %w", strings.Join(ctrls, " "), err)
	}
	return nil
}

// apply writes the limits, each to the hierarchy holding its controller.
func (g *Group) apply(h *Hierarchy, l Limits) error {
	write := func(dir, file, value string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
			return fmt.Errorf("cgroup: set %s = %s: %w", file, value, err)
		}
		return nil
	}
	v2 := func(c string) bool { return g.V2 != "" && h.v2Controllers[c] }
	if l.Memory > 0 {
		if v2("memory") {
			if err := write(g.V2, "memory.max", strconv.FormatInt(l.Memory, 10)); err != nil {
				return err
			}
			write(g.V2, "memory.swap.max", "0") // absent without swap accounting
		} else {
			if err := write(g.V1["memory"], "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)); err != nil {
				return err
			}
			// Without swap the limit is the limit; where swap is accounted
			// it must not become a way around it.
			write(g.V1["memory"], "memory.memsw.limit_in_bytes", strconv.FormatInt(l.Memory, 10))
		}
	}
	if l.Pids > 0 {
		dir := g.V1["pids"]
		if v2("pids") {
			dir = g.V2
		}
		if err := write(dir, "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return err
		}
	}
	const period = 100000 // µs
	if l.CPUWeight > 0 {
		if v2("cpu") {
			if err := write(g.V2, "cpu.weight", strconv.FormatInt(l.CPUWeight, 10)); err != nil {
				return err
			}
		} else if err := write(g.V1["cpu"], "cpu.shares", strconv.FormatInt(max(2, l.CPUWeight*1024/100), 10)); err != nil {
			return err
		}
	}
	if l.CPUQuota > 0 {
		quota := strconv.FormatInt(l.CPUQuota*period/100, 10)
		if v2("cpu") {
			if err := write(g.V2, "cpu.max", quota+" "+strconv.Itoa(period)); err != nil {
				return err
			}
		} else {
			if err := write(g.V1["cpu"], "cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
				return err
			}
			if err := write(g.V1["cpu"], "cpu.cfs_quota_us", quota); err != nil {
				return err
			}
		}
	}
	return nil
}

// OpenFD opens the v2 directory for clone-into-cgroup
// (SysProcAttr.UseCgroupFD); the caller closes it. -1 without v2.
func (g *Group) OpenFD() (int, error) {
	if g.V2 == "" {
		return -1, nil
	}
	fd, err := unix.Open(g.V2, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: g.V2, Err: err}
	}
	return fd, nil
}

// Join moves pid into the group: into its v1 directories, and into its v2
// directory too unless inV2 (it was cloned into it).
func (g *Group) Join(pid int, inV2 bool) error {
	dirs := make([]string, 0, 1+len(g.V1))
	if g.V2 != "" && !inV2 {
		dirs = append(dirs, g.V2)
	}
	for _, d := range g.V1 {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("cgroup: join %s: %w", d, err)
		}
	}
	return nil
}

// Kill SIGKILLs every process in the group: through cgroup.kill where the
// kernel has it (nothing can fork its way out), otherwise by killing every
// pid listed in cgroup.procs until none is left.
func (g *Group) Kill() error {
	if g.V2 != "" {
		err := os.WriteFile(filepath.Join(g.V2, "cgroup.kill"), []byte("1"), 0o644)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("cgroup: kill %s: %w", g.V2, err)
		}
	}
	return g.killListed()
}

// killListed SIGKILLs every pid listed in the group's cgroup.procs, again
// for pids that appear meanwhile (a fork racing the kill), until a pass
// finds none it has not signalled. A killed process stays listed until it
// has died, which on a loaded machine takes a while: that is not a new
// process, and Remove waits for the group to empty.
func (g *Group) killListed() error {
	killed := map[int]bool{}
	for range 1000 {
		fresh := 0
		for _, pid := range g.Pids() {
			if !killed[pid] {
				killed[pid] = true
				unix.Kill(pid, unix.SIGKILL)
				fresh++
			}
		}
		if fresh == 0 {
			return nil
		}
	}
	return fmt.Errorf("cgroup: processes keep appearing in %s", g)
}

// Pids lists the processes in the group (from every hierarchy it has).
func (g *Group) Pids() []int {
	seen := map[int]bool{}
	var out []int
	read := func(dir string) {
		f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if pid, err := strconv.Atoi(strings.TrimSpace(s.Text())); err == nil && !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	if g.V2 != "" {
		read(g.V2)
	}
	for _, d := range g.V1 {
		read(d)
	}
	return out
}

// String names the group's directories.
func (g *Group) String() string {
	if g.V2 != "" {
		return g.V2
	}
	for _, d := range g.V1 {
		return d
	}
	return "(no cgroup)"
}

// Remove kills what is left in the group, waits until it is empty and
// removes its directories. It polls on a ticker until ctx ends; the kernel
// frees a cgroup only once its last process is reaped.
func (g *Group) Remove(ctx context.Context) error {
	if err := g.Kill(); err != nil {
		return err
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		err := g.rmdirs()
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		g.killListed()
		select {
		case <-ctx.Done():
			return fmt.Errorf("cgroup: %s still busy: %w", g, ctx.Err())
		case <-t.C:
		}
	}
}

// rmdirs removes every directory of the group; the first error other than
// "already gone" is returned after trying them all.
func (g *Group) rmdirs() error {
	var first error
	rm := func(d string) {
		if err := unix.Rmdir(d); err != nil && err != unix.ENOENT && first == nil {
			first = &os.PathError{Op: "rmdir", Path: d, Err: err}
		}
	}
	for _, d := range g.V1 {
		rm(d)
	}
	if g.V2 != "" {
		rm(g.V2)
	}
	return first
}

// Usage reads what the group uses now. Missing files read as zero.
func (g *Group) Usage() Usage {
	var u Usage
	if d, ok := g.V1["memory"]; ok {
		u.Memory = readInt(d, "memory.usage_in_bytes")
		u.MemoryPeak = readInt(d, "memory.max_usage_in_bytes")
		u.OOMKills = readKey(d, "memory.oom_control", "oom_kill")
	} else if g.V2 != "" {
		u.Memory = readInt(g.V2, "memory.current")
		u.MemoryPeak = readInt(g.V2, "memory.peak")
		u.OOMKills = readKey(g.V2, "memory.events", "oom_kill")
	}
	if d, ok := g.V1["pids"]; ok {
		u.Pids = readInt(d, "pids.current")
		u.PidsRefused = readKey(d, "pids.events", "max")
	} else if g.V2 != "" {
		u.Pids = readInt(g.V2, "pids.current")
		u.PidsRefused = readKey(g.V2, "pids.events", "max")
	}
	if u.Pids == 0 {
		u.Pids = int64(len(g.Pids()))
	}
	if g.V2 != "" {
		u.CPUUsec = readKey(g.V2, "cpu.stat", "usage_usec")
	}
	if d, ok := g.V1["cpu"]; ok && u.CPUUsec == 0 {
		u.CPUUsec = readKey(d, "cpu.stat", "usage_usec")
	}
	u.Limits = g.Limits.String()
	return u
}

// OOMKills is the number of OOM kills in the group so far.
func (g *Group) OOMKills() int64 {
	if d, ok := g.V1["memory"]; ok {
		return readKey(d, "memory.oom_control", "oom_kill")
	}
	if g.V2 != "" {
		return readKey(g.V2, "memory.events", "oom_kill")
	}
	return 0
}

func readInt(dir, file string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// readKey reads "key value" lines (memory.events, cpu.stat, oom_control).
func readKey(dir, file, key string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
