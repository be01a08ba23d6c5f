// Package tyrant decides who a vassal runs as in tyrant mode: the owner of
// its config (or the uid/gid a monitor supplies), never root.
package tyrant

import (
	"fmt"
	"syscall"

	"github.com/emperor-dev/emperor/internal/usergroup"
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

// Groups returns the supplementary groups of uid from the group database,
// gid first, as initgroups(3) would set them (emperor-tyrant-initgroups).
// A uid without a passwd entry, or a lookup that fails, gets gid alone.
func Groups(uid, gid uint32) []uint32 {
	out := []uint32{gid}
	ids, err := usergroup.Groups(int(uid))
	if err != nil {
		return out
	}
	for _, n := range ids {
		if uint32(n) != gid {
			out = append(out, uint32(n))
		}
	}
	return out
}
