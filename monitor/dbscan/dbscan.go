// Package dbscan holds what the database monitors (pg://, mongodb://) share:
// the check of one row, the snapshot of the last good scan and the
// difference between it and a new scan, the cap on removals, and the
// reconnect backoff.
//
// A database monitor runs a query, turns each result into a Row and hands
// the whole result set to Snapshot.Apply, which returns only the events
// that describe a change. A scan that fails is never applied: an outage or
// an error is not read as "every row was deleted".
package dbscan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emperor-dev/emperor/monitor"
)

// Row is one vassal as a database returned it.
type Row struct {
	// Where names the row for messages: "row 3" or a document id.
	Where string
	// Name is the vassal's name, with its config extension.
	Name string
	// Config is the config text; nil when the database gave none (NULL).
	Config []byte
	// ModTime is the row's modification time in nanoseconds since the epoch.
	ModTime int64
	// Owner is the uid/gid the row asks for (tyrant mode only).
	Owner *monitor.Owner
	// Err, when set, says why the row is unusable (a column of the wrong
	// type, say); the other fields may be partial.
	Err error
}

// Checks are the rules every row must pass.
type Checks struct {
	// Extensions are extra config extensions (emperor-extra-extension).
	Extensions []string
	// Tyrant requires an owner and refuses uid or gid 0.
	Tyrant bool
}

// Check returns why row cannot become a vassal, or nil.
func (c Checks) Check(row *Row) error {
	switch {
	case row.Err != nil:
		return row.Err
	case row.Name == "":
		return errors.New("empty name")
	case len(row.Name) > monitor.MaxNameLen:
		return fmt.Errorf("name is %d bytes, the limit is %d", len(row.Name), monitor.MaxNameLen)
	case strings.ContainsAny(row.Name, "/\x00"):
		return fmt.Errorf("name %q contains a slash or a NUL byte", row.Name)
	case !monitor.IsVassalName(row.Name, c.Extensions):
		return fmt.Errorf("name %q has no known config extension (.ini .xml .yml .yaml .json .js or emperor-extra-extension)", row.Name)
	case row.Config == nil:
		return errors.New("config is NULL or missing")
	case len(row.Config) == 0:
		return errors.New("config is empty")
	}
	if c.Tyrant {
		switch {
		case row.Owner == nil:
			return errors.New("tyrant mode needs uid and gid (the 4th and 5th columns)")
		case row.Owner.UID == 0 || row.Owner.GID == 0:
			return fmt.Errorf("tyrant mode refuses uid %d gid %d: a vassal never runs as root", row.Owner.UID, row.Owner.GID)
		}
	}
	return nil
}

// Hash is the Version.Hash of config text.
func Hash(text []byte) string {
	sum := sha256.Sum256(text)
	return hex.EncodeToString(sum[:16])
}

// entry is what the snapshot remembers of one vassal.
type entry struct {
	version monitor.Version
	owner   monitor.Owner
	hasOwn  bool
}

// Snapshot is the set of vassals a monitor has announced, as of its last
// applied scan. It is owned by the monitor's Run goroutine.
type Snapshot struct {
	monitorID string
	checks    Checks
	// MaxRemovals caps how many vassals one scan may remove; 0: no cap.
	maxRemovals int
	known       map[string]entry
	// bad remembers the last problem reported per row, so each is logged
	// once, not on every scan.
	bad map[string]string
	// held is the number of removals the last scan held back.
	held int
}

// NewSnapshot returns an empty snapshot for the monitor with that ID.
func NewSnapshot(monitorID string, checks Checks, maxRemovals int) *Snapshot {
	return &Snapshot{monitorID: monitorID, checks: checks, maxRemovals: maxRemovals,
		known: map[string]entry{}, bad: map[string]string{}}
}

// Len is the number of vassals the snapshot holds.
func (s *Snapshot) Len() int { return len(s.known) }

// BadRow is a row refused by a scan, reported the first time it is seen
// with that problem.
type BadRow struct {
	Where, Name string
	Err         error
	// Kept is true when the name belongs to a running vassal, which keeps
	// its last good config.
	Kept bool
}

// Result is what applying one scan produced.
type Result struct {
	// Events to emit, in a stable order: touches, then removals.
	Events []monitor.Event
	// NewBad are rows refused for a reason not reported before.
	NewBad []BadRow
	// Held is the number of removals this scan wanted but did not make
	// because they exceeded the cap; it is only set when it differs from the
	// previous scan's, so that it is reported once.
	Held int
}

// Apply compares a complete, successful scan with the snapshot, updates
// the snapshot and returns the events that describe the differences. A row
// that fails the checks is refused; when its name belongs to a known
// vassal, that vassal is kept as it is (a bad edit does not stop it).
// When more vassals vanished than the cap allows and force is false, none
// is removed (a truncated table must not stop the fleet); force (an
// operator's explicit rescan) removes them all.
func (s *Snapshot) Apply(rows []Row, reason string, force bool) Result {
	var res Result
	seen := make(map[string]bool, len(rows))
	bad := map[string]string{}
	refuse := func(r *Row, err error) {
		id := r.Where
		if r.Name != "" {
			id = r.Name
			if _, known := s.known[r.Name]; known {
				seen[r.Name] = true
			}
		}
		msg := err.Error()
		bad[id] = msg
		if s.bad[id] != msg {
			_, kept := s.known[r.Name]
			res.NewBad = append(res.NewBad, BadRow{Where: r.Where, Name: r.Name, Err: err, Kept: kept})
		}
	}
	for i := range rows {
		r := &rows[i]
		if err := s.checks.Check(r); err != nil {
			refuse(r, err)
			continue
		}
		if seen[r.Name] {
			refuse(r, fmt.Errorf("name %q appears twice in the result; only the first row counts", r.Name))
			continue
		}
		seen[r.Name] = true
		e := entry{version: monitor.Version{ModTime: r.ModTime, Size: int64(len(r.Config)), Hash: Hash(r.Config)}}
		var owner *monitor.Owner
		if r.Owner != nil {
			e.owner, e.hasOwn = *r.Owner, true
			o := *r.Owner
			owner = &o
		}
		old, known := s.known[r.Name]
		if known && old == e {
			continue
		}
		why := "created"
		if known {
			why = "modified"
		}
		if reason != "" {
			why += ", " + reason
		}
		s.known[r.Name] = e
		res.Events = append(res.Events, monitor.Event{
			Op:      monitor.Touch,
			Key:     monitor.Key{Monitor: s.monitorID, Name: r.Name},
			Config:  r.Config,
			Version: e.version,
			Owner:   owner,
			Reason:  why,
		})
	}
	s.bad = bad
	var gone []string
	for name := range s.known {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	if s.maxRemovals > 0 && len(gone) > s.maxRemovals && !force {
		if s.held != len(gone) {
			res.Held = len(gone)
		}
		s.held = len(gone)
		return res
	}
	s.held = 0
	slices.Sort(gone)
	for _, name := range gone {
		delete(s.known, name)
		why := "removed"
		if reason != "" {
			why += ", " + reason
		}
		res.Events = append(res.Events, monitor.Event{
			Op:     monitor.Destroy,
			Key:    monitor.Key{Monitor: s.monitorID, Name: name},
			Reason: why,
		})
	}
	return res
}
