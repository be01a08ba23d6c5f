package main

import (
	"fmt"
	"strings"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/emperor"
)

// isolation is the emperor-cap, emperor-cgroup-*, tyrant and hook options,
// checked.
type isolation struct {
	limitCaps bool
	caps      capabilities.Set
	cgroup    bool
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
	return iso, nil
}

func (iso *isolation) apply(o *emperor.Options) {
	s := iso.s
	o.LimitCaps, o.Caps = iso.limitCaps, iso.caps
	o.Cgroup, o.CgroupLimits = iso.cgroup, iso.limits
	o.TyrantInitgroups = s.tyrantInitgroups
	o.ExecAsEmperor, o.ExecAsVassal = s.execAsEmperor, s.execAsVassal
	o.HookTimeout = s.hookTimeout
}
