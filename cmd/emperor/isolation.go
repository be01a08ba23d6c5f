package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/emperor"
)

// isolation is the emperor-cap, emperor-cgroup-*, tyrant and hook options,
// checked.
type isolation struct {
	limitCaps bool
	caps      capabilities.Set
	cgroup    string // "" (auto), "on" or "off"
	limits    cgroup.Limits
	s         *settings
}

func isolationOptions(s *settings) (*isolation, error) {
	iso := &isolation{s: s, cgroup: s.cgroup}
	if s.caps != "" {
		c, err := capabilities.Parse(s.caps)
		if err != nil {
			return nil, fmt.Errorf("emperor-cap: %w", err)
		}
		iso.limitCaps, iso.caps = true, c
	}
	for _, kv := range s.cgroupLimits {
		k, v, _ := strings.Cut(kv, "=")
		if err := iso.limits.Set(k, v); err != nil {
			return nil, fmt.Errorf("emperor-cgroup-%s: %w", k, err)
		}
	}
	if !iso.limits.IsZero() {
		if iso.cgroup == "off" {
			return nil, errors.New("emperor-cgroup = false, yet an emperor-cgroup-* limit is set: a limit needs a cgroup")
		}
		iso.cgroup = "on"
	}
	return iso, nil
}

// resolveCgroup turns emperor-cgroup = auto into on or off: on wherever the
// Emperor can make cgroups below its own (root, or a subtree systemd
// delegated to it), so that nothing a vassal starts outlives it; off with
// one line saying why and what that costs.
func (iso *isolation) resolveCgroup(log *slog.Logger) {
	if iso.cgroup != "" {
		return
	}
	iso.cgroup = "off"
	h, err := cgroup.Open()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = h.Probe(ctx)
		cancel()
	}
	if err != nil {
		log.Warn("vassals run without cgroups of their own: a daemon one of them double-forks out of its process group can outlive it; "+
			"emperor-cgroup = false says this is meant", "reason", err.Error())
		return
	}
	iso.cgroup = "on"
}

func (iso *isolation) apply(o *emperor.Options) {
	s := iso.s
	o.LimitCaps, o.Caps = iso.limitCaps, iso.caps
	o.Cgroup, o.CgroupLimits = iso.cgroup == "on", iso.limits
	o.TyrantInitgroups = s.tyrantInitgroups
	o.ExecAsEmperor, o.ExecAsVassal = s.execAsEmperor, s.execAsVassal
	o.HookTimeout = s.hookTimeout
}
