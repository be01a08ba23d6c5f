package emperor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/guardian"
	"github.com/emperor-dev/emperor/internal/regular"
	"github.com/emperor-dev/emperor/tyrant"
)

// isolate adds to a vassal's Spec what the isolation options ask for:
// capabilities, a hostname in a new uts namespace, a cgroup with the
// default limits, and exec-as-vassal hooks. It runs on the loop and does no
// I/O: reading the vassal's own limits and the group database is left to
// the spawner (resolveSpec).
func (e *Emperor) isolate(spec *Spec, v *vassal) {
	o := &e.opts
	spec.LimitCaps, spec.Caps = o.LimitCaps, o.Caps
	if spec.Namespaces.Has(unix.CLONE_NEWUTS) {
		spec.Hostname = hostname(v.ev.Key.Name)
	}
	spec.InitGroups = o.TyrantInitgroups && (spec.Credential != nil || spec.OpenOnce)
	spec.Hooks, spec.HookTimeout = append(e.vassalStartHook(v), o.ExecAsVassal...), o.HookTimeout // hooks.go
	if o.Cgroup {
		spec.Cgroup, spec.CgroupLimits = true, o.CgroupLimits
		spec.ConfigPath = v.ev.Path
	}
}

// resolveSpec does, on the spawner thread, the I/O isolate leaves out: the
// owner's supplementary groups (emperor-tyrant-initgroups) and the limits
// a vassal sets for itself in its config's [emperor] section, which may
// lower the Emperor's, never raise them.
func resolveSpec(spec *Spec, log *slog.Logger) {
	if spec.InitGroups && spec.Credential != nil {
		c := *spec.Credential
		c.Groups = tyrant.Groups(c.Uid, c.Gid)
		spec.Credential = &c
	}
	if !spec.Cgroup {
		return
	}
	text := spec.Config
	if text == nil && spec.ConfigPath != "" {
		text = readHead(spec.ConfigPath, 1<<20)
	}
	own, err := SectionLimits(text)
	if err != nil {
		log.Warn("ignoring the vassal's own cgroup limits", "vassal", spec.Key.Name, "monitor", spec.Key.Monitor, "err", err)
		return
	}
	if !own.IsZero() {
		spec.CgroupLimits = own.Min(spec.CgroupLimits)
	}
}

// hostname is a vassal's hostname in its uts namespace: its name without
// the extension, cut to the kernel's 64 bytes.
func hostname(name string) string {
	h := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	if h == "" {
		h = "vassal"
	}
	if len(h) > 64 {
		h = h[:64]
	}
	return h
}

// readHead reads at most n bytes of a regular file, never blocking on a
// FIFO or a device put in its place; errors and other kinds of file read as
// nothing (the vassal itself will report an unreadable config).
func readHead(path string, n int64) []byte {
	f, err := regular.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return b
}

// SectionLimits reads the cgroup limits a vassal's ini config sets for
// itself in an [emperor] section (cgroup-memory, cgroup-pids,
// cgroup-cpu-weight, cgroup-cpu-quota): uWSGI and our vassal read only
// [uwsgi], so the section is theirs to ignore. Other formats, and configs
// without the section, set nothing. Includes and variables are not
// expanded: the Emperor never opens files a tenant names.
func SectionLimits(text []byte) (cgroup.Limits, error) {
	var l cgroup.Limits
	in := false
	s := bufio.NewScanner(bytes.NewReader(text))
	s.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if strings.HasPrefix(line, "[") {
			in = strings.TrimSpace(strings.Trim(line, "[]")) == "emperor"
			continue
		}
		if !in || line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		key, isLimit := strings.CutPrefix(k, "cgroup-")
		if !isLimit {
			continue
		}
		if err := l.Set(key, val); err != nil {
			return cgroup.Limits{}, fmt.Errorf("[emperor] line %d: %w", n, err)
		}
	}
	return l, nil
}

// isolator is the spawner goroutine's view of the cgroup hierarchy, opened
// by startCgroups before the spawner starts (or on first use) and then
// owned by that goroutine; guard is the Emperor's guardian.
type isolator struct {
	h     *cgroup.Hierarchy
	err   error
	guard *guardian.Guardian
}

// startCgroups prepares per-vassal cgroups before the first spawn: it opens
// the hierarchy, removes the vassal cgroups a dead Emperor left below it
// (killing what still ran in them, which nobody supervises any more), and
// starts the guardian that does the same for this Emperor if it dies
// without running Ragnarok (a SIGKILL, a crash, the OOM killer).
func (e *Emperor) startCgroups(iso *isolator) error {
	h, err := cgroup.Open()
	if err != nil {
		return fmt.Errorf("emperor-cgroup: %w", err)
	}
	iso.h = h
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	self := os.Getpid()
	n, err := cgroup.Sweep(ctx, h.Parents(), func(owner int) bool { return owner != self && cgroup.Dead(owner) })
	if n > 0 {
		e.log.Warn("removed the vassal cgroups a dead Emperor left, and what still ran in them", "cgroups", n)
	}
	if err != nil {
		e.log.Error("some vassal cgroups a dead Emperor left could not be removed", "err", err)
	}
	g, err := guardian.Start(h.Parents(), e.opts.Stderr)
	if err != nil {
		return fmt.Errorf("emperor-cgroup: %w", err)
	}
	h.Companion(g.Pid())
	iso.guard = g
	e.log.Debug("guardian started", "pid", g.Pid(), "cgroups", h.String())
	return nil
}

// stopGuardian lets the guardian go once every vassal is gone.
func (e *Emperor) stopGuardian(iso *isolator) {
	if iso.guard == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := iso.guard.Stop(ctx); err != nil {
		e.log.Error("guardian", "err", err)
	}
}

func (i *isolator) hierarchy() (*cgroup.Hierarchy, error) {
	if i.h == nil && i.err == nil {
		i.h, i.err = cgroup.Open()
	}
	return i.h, i.err
}

// endTree runs when a vassal's process has been reaped: whatever it left
// in its cgroup (a double-forked daemon, a stray worker) is killed and the
// cgroup removed, off the loop. An OOM kill in the cgroup is noted in st.
func (e *Emperor) endTree(v *vassal, p *process, st *exitStatus) {
	g := p.cg
	if g == nil {
		return
	}
	p.cg = nil
	if n := g.OOMKills(); n > 0 {
		st.oom = fmt.Sprintf("oom: %d killed for the memory limit %s", n, cgroup.FormatSize(g.Limits.Memory))
	}
	log := e.log.With(e.attrs(v)...)
	e.cgroups.Add(1)
	go func() {
		defer e.cgroups.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if left := len(g.Pids()); left > 0 {
			log.Info("killing what the vassal left in its cgroup", "cgroup", g.String(), "processes", left)
		}
		if err := g.Remove(ctx); err != nil {
			log.Error("cgroup not removed", "err", err)
		}
	}()
}

// usageMaxAge is how old the cgroup usage in a stats or metrics answer may
// be: clients asking several times a second share one read of each
// vassal's cgroup files.
const usageMaxAge = time.Second

// readCgroups fills in the cgroup usage of each vassal in a snapshot; it
// runs in the stats or metrics client's goroutine, never on the loop.
func readCgroups(s *Stats) {
	for i := range s.Vassals {
		if g := s.Vassals[i].cg; g != nil {
			u := g.RecentUsage(usageMaxAge)
			s.Vassals[i].Cgroup = &u
		}
	}
}

// cgroupValue picks one usage figure of a vassal for metrics.
func cgroupValue(v *VassalStats, f func(*cgroup.Usage) int64) (float64, bool) {
	if v.Cgroup == nil {
		return 0, false
	}
	return float64(f(v.Cgroup)), true
}
