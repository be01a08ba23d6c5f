package files

import (
	"context"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/monitor"
)

// entry is what the monitor last knew of one name.
type entry struct {
	// key is the vassal name; abs the absolute path (empty when ignored).
	key, abs string
	// dir is the directory holding the entry.
	dir *dirState
	// dino and typ come from the last directory listing that showed the
	// entry: a changed inode there means the name was replaced (rename
	// over it) even if no event said so. typ is typeNone when the entry
	// was learnt from an event and has not been listed since.
	dino uint64
	// seen is the generation of the last listing that showed the entry.
	seen  uint64
	ver   monitor.Version
	owner monitor.Owner
	// refused is why the name, which exists, was last found to be no
	// config ("" if it was not): a refusal is logged when it changes, not
	// on every scan.
	refused string
	typ     uint8
	// ignored: the name is never a vassal (extension, pattern); it is kept
	// only so that listings recognise it without allocating.
	ignored bool
	// vassal: a Touch with ver and owner was emitted and no Destroy since.
	vassal bool
	// statErr: the last stat failed with an unexpected error (logged once);
	// the next scan stats the entry again.
	statErr bool
	// The small fields come last, together: the entry is 128 bytes, not
	// 144 (one per config: 10,000 of them at scale).
}

// mayBeLink reports whether the entry may be a symlink, whose target can
// change without any event in its directory.
func (e *entry) mayBeLink() bool {
	return e.typ == typeLink || e.typ == typeUnknown || e.typ == typeNone
}

// dirState is one directory the monitor lists.
type dirState struct {
	// name is the directory as vassal names spell it; level its depth
	// below the base (0 for the base).
	name  string
	level int
	// stat is the directory's stat at its last listing and statSince when
	// (monotonic) it was first listed with that stat. confirmed: a later
	// listing, at least confirmDelay after statSince, found the same stat.
	// From then on an unchanged stat proves the entries unchanged, since
	// any later change to them gets a later timestamp (this is git's
	// "racily clean" rule), and a watched directory need not be listed.
	stat      dirStat
	statSince time.Time
	confirmed bool
	// subdirs are the matching subdirectories (glob levels above the
	// last) at the last listing.
	subdirs []string
	// watched: an inotify watch is in place, so between deep scans only
	// changed names and symlinks need a stat. An unwatched directory has
	// every entry stat()ed on every scan.
	watched bool
	// seen is the generation of the last scan that reached the directory;
	// kept that of the last one that kept its entries without listing them
	// (unreadable, or unchanged: then unchanged is set too).
	seen, kept, unchanged uint64
	// failing and addFailed keep one log line per outage.
	failing, addFailed bool
}

// runState is everything Run mutates. It is owned by the Run goroutine.
type runState struct {
	m    *fileMonitor
	log  *slog.Logger
	w    *fsnotify.Watcher // nil: no inotify, poll every directory
	snap map[string]*entry // by vassal name
	dirs map[string]*dirState
	gen  uint64
	buf  []byte
	out  []monitor.Event // events not yet sent
	// pending maps vassal names reported by inotify to their absolute
	// paths, until the coalescing timer fires.
	pending map[string]string
	// structural: inotify reported a change to the directory tree (glob)
	// or to a watched directory itself; the next batch lists everything.
	structural bool
	// needFull: the next scan must stat every entry (overflow, errors).
	needFull bool
	// listed: the current pass listed or failed to read a directory, so
	// sweep has entries to drop. attention counts, as of the last sweep,
	// the entries an unchanged directory still needs stat()ed, and dirty
	// says that count may be low. When none holds, sweep has nothing to do
	// and an idle scan costs one stat per directory.
	listed    bool
	attention int
	dirty     bool
	lastFull  time.Time
	last      int // the level whose entries are candidates
}

func newRunState(m *fileMonitor) *runState {
	return &runState{
		m:       m,
		log:     m.log,
		snap:    make(map[string]*entry),
		dirs:    make(map[string]*dirState),
		buf:     make([]byte, direntBufSize),
		pending: make(map[string]string),
		last:    m.layout.levels() - 1,
	}
}

// apply folds one stat of e into the snapshot and queues the event it
// calls for, if any. newReason is the reason for a Touch of a new vassal.
func (s *runState) apply(e *entry, r statResult, newReason string) {
	if r.kind != kindError {
		e.statErr = false
		if r.why != e.refused && r.why != "" {
			s.log.Warn("refusing config: "+r.why, "path", e.abs)
		}
		e.refused = r.why
	}
	switch r.kind {
	case kindVassal:
		was := e.vassal
		if was && e.ver == r.ver && e.owner == r.owner {
			return
		}
		e.vassal, e.ver, e.owner = true, r.ver, r.owner
		reason := reasonModified
		if !was {
			reason = newReason
		}
		s.emit(monitor.Touch, e, reason)
	case kindGone, kindOther:
		if e.vassal {
			e.vassal = false
			s.emit(monitor.Destroy, e, reasonRemoved)
		}
	case kindError:
		if !e.statErr {
			s.log.Warn("cannot stat vassal config; keeping what was known", "path", e.abs, "err", r.err)
			e.statErr = true
			s.dirty = true
		}
	}
}

// emit queues an event for e.
func (s *runState) emit(op monitor.Op, e *entry, reason string) {
	ev := monitor.Event{
		Op:      op,
		Key:     monitor.Key{Monitor: s.m.id, Name: e.key},
		Path:    e.abs,
		Version: e.ver,
		Reason:  reason,
	}
	if op == monitor.Touch {
		owner := e.owner
		ev.Owner = &owner
	}
	s.log.Debug("vassal config event", "op", op, "vassal", e.key, "reason", reason)
	s.out = append(s.out, ev)
}

// sweep ends a pass. It forgets every entry the pass did not list,
// emitting Destroy for vassals, except in directories whose entries were
// kept: an unreadable directory is an outage, not a removal. In kept
// directories that are unchanged, it stats what may be a symlink (when
// following) and what failed to stat last time.
func (s *runState) sweep() {
	if !s.listed && !s.dirty && s.attention == 0 {
		return
	}
	n := 0
	for key, e := range s.snap {
		if e.seen == s.gen {
			if s.needsAttention(e) {
				n++
			}
			continue
		}
		if d := e.dir; d.kept == s.gen {
			if d.unchanged == s.gen && s.needsAttention(e) {
				s.apply(e, statAt(unix.AT_FDCWD, e.abs, s.m.noFollow), reasonRescan)
			}
			if s.needsAttention(e) {
				n++
			}
			continue
		}
		if e.vassal {
			s.emit(monitor.Destroy, e, reasonRemoved)
		}
		delete(s.snap, key)
	}
	s.attention, s.dirty = n, false
}

// needsAttention reports whether e must be stat()ed even when its
// directory is unchanged.
func (s *runState) needsAttention(e *entry) bool {
	return !e.ignored && (e.statErr || (!s.m.noFollow && e.mayBeLink()))
}

// keptEvents is the most queued events whose room send keeps for the next
// pass; a larger queue (a first scan, a flood of new configs) is let go.
const keptEvents = 256

// send delivers the queued events in order. It returns false if ctx was
// cancelled first.
func (s *runState) send(ctx context.Context, events chan<- monitor.Event) bool {
	defer func() {
		if cap(s.out) > keptEvents {
			s.out = nil // a first scan of 10,000 configs left 1.4 MiB here
			return
		}
		clear(s.out)
		s.out = s.out[:0]
	}()
	for _, ev := range s.out {
		select {
		case events <- ev:
		case <-ctx.Done():
			return false
		}
	}
	return true
}
