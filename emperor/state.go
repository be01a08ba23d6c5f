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
//     vassal should run and its Sub says what it waits for.
//   - Spawning covers the fork/exec on the spawner thread, so the loop never
//     waits for it.
//   - Disabled is "stay down until ...", its Sub saying until what: a
//     command, or a config change after byte 22, exit code 26 or a refusal.
//     uWSGI re-adds such a vassal at the next scan (bug B17) and retries a
//     refusal on every scan.
//
// Absent vassals are not in the table at all. A new state (an on-demand
// vassal idle on its socket, say) is one more constant here, one more row
// in allowed and subsOf, and one more case in the handlers' switches.
type State uint8

const (
	// Absent: not in the table (only used in transitions and notes).
	Absent State = iota
	// Waiting: should run; its Sub says what it waits for.
	Waiting
	// Spawning: the spawn request is on its way to or on the spawner thread.
	Spawning
	// Running: the process lives and its control channel is open.
	Running
	// Stopping: a stop byte was sent (or a kill): waiting for the exit; its
	// Sub says what follows it.
	Stopping
	// Cursed: the control channel broke without a stop (the vassal crashed
	// or closed it): waiting for the exit, killed after the curse tolerance.
	Cursed
	// Disabled: down on purpose; its Sub says what brings it back.
	Disabled
	numStates
)

var stateNames = [numStates]string{"absent", "waiting", "spawning", "running", "stopping", "cursed", "disabled"}

// stateLines are the log messages of transitions ("vassal running"), made
// once: the log's burst limiter keeps a message per kind.
var stateLines = func() (l [numStates]string) {
	for s, name := range stateNames {
		l[s] = "vassal " + name
	}
	return l
}()

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Sub is why a vassal is in its state, for the states where the why
// changes what happens next: what a Waiting vassal waits for, what follows
// a Stopping vassal's exit, and what brings a Disabled vassal back. The
// other states have none.
type Sub uint8

const (
	// None: the state needs no why (Spawning, Running, Cursed), or a
	// Waiting vassal is between two gates within one event.
	None Sub = iota

	// Penalty: Waiting out its respawn penalty (the blacklist) on a timer.
	Penalty
	// Throttle: Waiting in the spawn throttle's queue (throttle.go).
	Throttle
	// Slot: Waiting in the admission queue for a start slot.
	Slot

	// Restart: Stopping, then spawned again (or removed if its config went).
	Restart
	// Hold: Stopping by command, then Disabled/Held.
	Hold
	// Resign: Stopping after byte 22, then Disabled/Voluntary.
	Resign

	// Held: Disabled by the stop command; only start brings it back.
	Held
	// Voluntary: Disabled after byte 22; a config change brings it back.
	Voluntary
	// Exiled: Disabled after exit code 26; a config change brings it back.
	Exiled
	// Refused: Disabled because its spawn was refused (tyrant, an inline
	// config too large); a config change retries.
	Refused

	// Fds: Waiting for a free file descriptor, after a spawn failed for
	// lack of one (fdbudget.go).
	Fds
	// Suspended: Disabled since its config appeared, with
	// emperor-wait-for-command: only a start command spawns it (uWSGI's
	// SUSPENDED state), and a config change does not.
	Suspended
	numSubs
)

var subNames = [numSubs]string{"", "penalty", "throttle", "slot", "restart", "hold", "resign", "held", "voluntary", "exiled", "refused", "fds", "suspended"}

func (s Sub) String() string {
	if s < numSubs {
		return subNames[s]
	}
	return fmt.Sprintf("sub(%d)", uint8(s))
}

// allowed is the transition table: allowed[from] lists every legal target.
// transition refuses anything else. The README's table is generated from
// it (TestREADMEStateTable).
var allowed = [numStates][]State{
	Absent:   {Waiting},
	Waiting:  {Spawning, Absent, Disabled},
	Spawning: {Running, Cursed, Waiting, Disabled, Absent},
	Running:  {Stopping, Cursed, Waiting, Disabled},
	Stopping: {Absent, Waiting, Disabled},
	Cursed:   {Stopping, Absent, Waiting, Disabled},
	Disabled: {Waiting, Absent},
}

// subsOf lists the sub-states each state may carry; a state not listed
// carries None only.
var subsOf = [numStates][]Sub{
	Waiting:  {None, Penalty, Throttle, Slot, Fds},
	Stopping: {Restart, Hold, Resign},
	Disabled: {Held, Voluntary, Exiled, Refused, Suspended},
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

// validSub reports whether state s may carry sub.
func validSub(s State, sub Sub) bool {
	if s >= numStates {
		return false
	}
	if len(subsOf[s]) == 0 {
		return sub == None
	}
	for _, x := range subsOf[s] {
		if x == sub {
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

// StateTable renders the transition table, with each state's sub-states,
// as the Markdown table the README shows.
func StateTable() string {
	var b strings.Builder
	b.WriteString("| from | to | sub-states |\n|---|---|---|\n")
	for from := State(0); from < numStates; from++ {
		to := make([]string, len(allowed[from]))
		for i, s := range allowed[from] {
			to[i] = s.String()
		}
		var subs []string
		for _, s := range subsOf[from] {
			if s != None {
				subs = append(subs, s.String())
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", from, strings.Join(to, ", "), strings.Join(subs, ", "))
	}
	return b.String()
}
