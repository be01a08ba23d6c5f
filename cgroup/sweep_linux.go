package cgroup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Parents lists the directories vassal cgroups are made in: the Emperor's
// own v2 cgroup and its cgroup in each v1 hierarchy it uses. The guardian
// and the sweep of a dead Emperor's leftovers look there.
func (h *Hierarchy) Parents() []string {
	var out []string
	if h.v2 != "" {
		out = append(out, h.v2)
	}
	for _, c := range []string{"memory", "pids", "cpu"} {
		if d, ok := h.v1[c]; ok && !contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// Companion names a process that lives in the Emperor's own v2 cgroup
// beside it (the guardian): when the Emperor moves itself to a leaf to
// delegate controllers, the companion moves with it.
func (h *Hierarchy) Companion(pid int) { h.companions = append(h.companions, pid) }

// OwnerOf reads which Emperor made a vassal cgroup from its directory name
// (vassal-NAME-PID-SEQ, see Create); ok is false for any other name.
func OwnerOf(base string) (pid int, ok bool) {
	rest, ok := strings.CutPrefix(base, "vassal-")
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return 0, false
	}
	if _, err := strconv.ParseUint(rest[i+1:], 10, 64); err != nil {
		return 0, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '-')
	if j <= 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[j+1:])
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// Sweep kills everything in the vassal cgroups below parents whose owner
// (the Emperor pid in their name) mine accepts, and removes them. It
// returns how many cgroup directories it removed; the error is the first
// it could not remove, after trying them all.
func Sweep(ctx context.Context, parents []string, mine func(owner int) bool) (int, error) {
	removed := 0
	var first error
	for _, p := range parents {
		entries, err := os.ReadDir(p)
		if err != nil {
			if first == nil && !errors.Is(err, os.ErrNotExist) {
				first = err
			}
			continue
		}
		for _, e := range entries {
			owner, ok := OwnerOf(e.Name())
			if !ok || !e.IsDir() || !mine(owner) {
				continue
			}
			g := groupAt(filepath.Join(p, e.Name()))
			if err := g.Remove(ctx); err != nil {
				if first == nil {
					first = err
				}
				continue
			}
			removed++
		}
	}
	return removed, first
}

// groupAt is a Group standing for one directory: a v2 one when it has
// cgroup.type (which only v2 cgroups below the root have), else a v1 one.
func groupAt(dir string) *Group {
	if _, err := os.Stat(filepath.Join(dir, "cgroup.type")); err == nil {
		return &Group{V2: dir}
	}
	return &Group{V1: map[string]string{"": dir}}
}

// Dead reports whether no process has the pid: the Emperor that made a
// cgroup is gone, so what is left in it has nobody to supervise it.
func Dead(pid int) bool {
	return unix.Kill(pid, 0) == unix.ESRCH
}

// Probe tells whether vassal cgroups can be made here: it creates one with
// no limits and removes it. The error says why not (no hierarchy, no
// permission on the Emperor's cgroup, ...).
func (h *Hierarchy) Probe(ctx context.Context) error {
	g, err := h.Create("probe", Limits{})
	if err != nil {
		return err
	}
	return g.Remove(ctx)
}
