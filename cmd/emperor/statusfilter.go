package main

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/emperor-dev/emperor/emperor"
)

// statusFilter chooses the vassals `emperor status` lists: all of them,
// or those in one state, those whose name matches a glob, those with a
// problem, or those that pass every filter given.
type statusFilter struct {
	state    string // a state name, "" for any
	glob     string // a path.Match pattern on the vassal's name, "" for any
	problems bool   // only vassals not running, not loyal or penalised
}

// knownStates are the names a --state may give: our Emperor's states,
// then the ones uwsgiState names for a uWSGI Emperor's vassals.
func knownStates() []string {
	var names []string
	for s := emperor.State(1); !strings.HasPrefix(s.String(), "state("); s++ {
		names = append(names, s.String())
	}
	return append(names, "starting", "ready", "accepting")
}

// check refuses a filter that could never match, saying why.
func (f *statusFilter) check() error {
	if f.state != "" && !slices.Contains(knownStates(), f.state) {
		return fmt.Errorf("--state %q: not a state (%s)", f.state, strings.Join(knownStates(), ", "))
	}
	if f.glob != "" {
		if _, err := path.Match(f.glob, ""); err != nil {
			return fmt.Errorf("name pattern %q: %w", f.glob, err)
		}
	}
	return nil
}

func (f *statusFilter) active() bool { return f.state != "" || f.glob != "" || f.problems }

// keep reports whether v is listed.
func (f *statusFilter) keep(v *emperor.VassalStats, penalised penalties) bool {
	if f.state != "" && stateOf(v) != f.state {
		return false
	}
	if f.glob != "" {
		if ok, _ := path.Match(f.glob, v.ID); !ok {
			return false
		}
	}
	if f.problems && running(v) && v.Loyal == 1 && !penalised.has(v) {
		return false
	}
	return true
}

// stateOf is the state a vassal is shown in: ours, or for a uWSGI
// Emperor's vassal the one uwsgiState names.
func stateOf(v *emperor.VassalStats) string {
	if v.State != "" {
		return v.State
	}
	return uwsgiState(v)
}

// running reports whether v's process runs and is not being stopped: our
// state running, or a uWSGI vassal with a pid and no curse.
func running(v *emperor.VassalStats) bool {
	if v.State != "" {
		return v.State == "running"
	}
	return v.Pid > 0 && v.Cursed == 0
}

// penalties tells the vassals whose next respawn is delayed for dying
// before they were loyal: those in the blacklist. uWSGI's blacklist names
// no monitor: its entries match by name alone.
type penalties map[[2]string]bool

func penalisedSet(s *emperor.Stats) penalties {
	p := make(penalties, len(s.Blacklist))
	for _, b := range s.Blacklist {
		p[[2]string{b.Monitor, b.ID}] = true
	}
	return p
}

func (p penalties) has(v *emperor.VassalStats) bool {
	return p[[2]string{v.Monitor, v.ID}] || p[[2]string{"", v.ID}]
}

// printSummary writes one line of counts over every vassal, before any
// filter: how many in each state (in the states' order), how many not
// loyal and how many penalised. "12 vassals: 10 running, 2 waiting; 2 not
// loyal, 1 penalised".
func printSummary(w io.Writer, s *emperor.Stats, penalised penalties) {
	byState := map[string]int{}
	notLoyal, pen := 0, 0
	for i := range s.Vassals {
		v := &s.Vassals[i]
		byState[stateOf(v)]++
		if v.Loyal != 1 {
			notLoyal++
		}
		if penalised.has(v) {
			pen++
		}
	}
	var parts []string
	other := len(s.Vassals)
	for _, st := range append(knownStates(), "-") {
		if n := byState[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
			other -= n
		}
	}
	if other > 0 { // states this build does not know: not printed as sent
		parts = append(parts, fmt.Sprintf("%d other", other))
	}
	if len(parts) == 0 {
		parts = append(parts, "none")
	}
	fmt.Fprintf(w, "%d vassals: %s; %d not loyal, %d penalised\n", len(s.Vassals), strings.Join(parts, ", "), notLoyal, pen)
}
