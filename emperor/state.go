package emperor

import (
	"fmt"
	"strings"
)

// State is where a vassal is in its lifecycle. The names follow the uWSGI
// reference (section 1.2) where uWSGI has the state; Waiting, Spawning and
// Disabled are ours and added on purpose:
//
//   - Waiting replaces uWSGI's "deleted and re-added at the next scan": the
//     vassal should run and a timer (penalty, throttle) says when.
//   - Spawning covers the fork/exec on the spawner thread, so the loop never
//     waits for it.
//   - Disabled is "stay down until the config changes", after byte 22,
//     exit code 26 or a tyrant refusal; uWSGI re-adds such a vassal at the
//     next scan (bug B17) and retries a refusal on every scan.
//
// Absent vassals are not in the table at all.
type State uint8

const (
	// Absent: not in the table (only used in transitions and notes).
	Absent State = iota
	// Waiting: should run; the spawn is scheduled.
	Waiting
	// Spawning: the spawn request is on the spawner thread.
	Spawning
	// Running: the process lives and its control channel is open.
	Running
	// Stopping: a stop byte was sent (or a kill): waiting for the exit.
	Stopping
	// Cursed: the control channel broke without a stop (the vassal crashed
	// or closed it): waiting for the exit, killed after the curse tolerance.
	Cursed
	// Disabled: stopped of its own will; restarted only by a config change.
	Disabled
	numStates
)

var stateNames = [numStates]string{"absent", "waiting", "spawning", "running", "stopping", "cursed", "disabled"}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// allowed is the transition table: allowed[from] lists every legal target.
// transition refuses anything else. The diagram in the README is generated
// from this table (see TestStateDiagram).
var allowed = [numStates][]State{
	Absent:   {Waiting},
	Waiting:  {Spawning, Absent, Disabled},
	Spawning: {Running, Waiting, Absent},
	Running:  {Stopping, Cursed, Waiting, Disabled},
	Stopping: {Absent, Waiting, Disabled},
	Cursed:   {Stopping, Absent, Waiting, Disabled},
	Disabled: {Waiting, Absent},
}

// canTransition reports whether from → to is in the table.
func canTransition(from, to State) bool {
	if from >= numStates {
		return false
	}
	for _, s := range allowed[from] {
		if s == to {
			return true
		}
	}
	return false
}

// StateDiagram renders the transition table as a Graphviz digraph.
func StateDiagram() string {
	var b strings.Builder
	b.WriteString("digraph vassal {\n")
	for from := State(0); from < numStates; from++ {
		for _, to := range allowed[from] {
			fmt.Fprintf(&b, "  %s -> %s;\n", from, to)
		}
	}
	b.WriteString("}\n")
	return b.String()
}
