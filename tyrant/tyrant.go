// Package tyrant decides who a vassal runs as in tyrant mode: the owner of
// its config (or the uid/gid a monitor supplies), never root.
package tyrant

import (
	"fmt"
	"syscall"

	"github.com/emperor-dev/emperor/monitor"
)

// Error is a tyrant-mode refusal.
type Error struct {
	Vassal string
	Reason string
}

func (e *Error) Error() string { return "tyrant: vassal " + e.Vassal + ": " + e.Reason }

// Credential returns the credential a vassal of the given owner runs with.
// uid 0 and gid 0 are refused, as is a config whose owner is unknown. The
// supplementary groups are emptied (setgroups(0)): a uid without a passwd
// entry still works, with its gid as its only group.
func Credential(vassal string, o *monitor.Owner) (*syscall.Credential, error) {
	switch {
	case o == nil:
		return nil, &Error{Vassal: vassal, Reason: "the monitor gives no owner"}
	case o.UID == 0 || o.GID == 0:
		return nil, &Error{Vassal: vassal, Reason: fmt.Sprintf("refusing to run as uid %d gid %d (root)", o.UID, o.GID)}
	}
	return &syscall.Credential{Uid: o.UID, Gid: o.GID, Groups: []uint32{}}, nil
}
