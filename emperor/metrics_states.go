package emperor

import (
	"fmt"
	"io"
)

// writeStateSums writes the vassals as counts and sums by state, the
// metrics of emperor-metrics-per-vassal = false: a fixed number of series
// (families × states) however many vassals there are, in place of the
// per-vassal families. Every family is a gauge: a vassal that leaves takes
// its restarts and rate limits out of the sums.
func writeStateSums(w io.Writer, s *Stats, family func(name, typ, help string)) {
	type sums struct{ up, loyal, penalised, restarts, rateLimited, heartbeat, memory, tasks int64 }
	by := make([]sums, numStates)
	var anyCgroup bool
	for i := range s.Vassals {
		v := &s.Vassals[i]
		st := stateIndex(v.State)
		if st < 0 {
			continue
		}
		x := &by[st]
		if v.Pid > 0 {
			x.up++
		}
		x.loyal += int64(v.Loyal)
		if v.Penalty > 0 {
			x.penalised++
		}
		x.restarts += int64(v.Restarts)
		x.rateLimited += int64(v.RateLimited)
		if v.LastHeartbeat != 0 {
			x.heartbeat++
		}
		if v.Cgroup != nil {
			anyCgroup = true
			x.memory += v.Cgroup.Memory
			x.tasks += v.Cgroup.Pids
		}
	}
	type stateFamily struct {
		name, help string
		value      func(x *sums) int64
	}
	fams := []stateFamily{
		{"emperor_vassals_up", "Vassals with a running process, by state.", func(x *sums) int64 { return x.up }},
		{"emperor_vassals_loyal", "Vassals whose process sent byte 17, by state.", func(x *sums) int64 { return x.loyal }},
		{"emperor_vassals_penalised", "Vassals whose next unloyal death would delay their respawn (blacklisted), by state.", func(x *sums) int64 { return x.penalised }},
		{"emperor_vassals_heartbeating", "Vassals under heartbeat supervision, by state.", func(x *sums) int64 { return x.heartbeat }},
		{"emperor_vassals_restarts", "Processes the vassals started after their first, summed by state.", func(x *sums) int64 { return x.restarts }},
		{"emperor_vassals_rate_limited", "Times the vassals sent more than their control-channel byte budget, summed by state.", func(x *sums) int64 { return x.rateLimited }},
	}
	if anyCgroup {
		fams = append(fams,
			stateFamily{"emperor_vassals_memory_bytes", "Memory the vassals' cgroups use, summed by state.", func(x *sums) int64 { return x.memory }},
			stateFamily{"emperor_vassals_tasks", "Tasks in the vassals' cgroups, summed by state.", func(x *sums) int64 { return x.tasks }})
	}
	for _, f := range fams {
		family(f.name, "gauge", f.help)
		for st := Waiting; st < numStates; st++ {
			fmt.Fprintf(w, "%s{state=%q} %d\n", f.name, st.String(), f.value(&by[st]))
		}
	}
}

// stateIndex is the State named name, or -1.
func stateIndex(name string) int {
	for st := State(0); st < numStates; st++ {
		if st.String() == name {
			return int(st)
		}
	}
	return -1
}
