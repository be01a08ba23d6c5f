package files

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/monitor"
)

// Run watches the configs until ctx is cancelled and returns nil then. It
// emits one Touch per vassal found by the first scan, sends the monitor's
// ID on Options.Ready, then emits the differences it sees. It must not be
// called twice at the same time; a new call starts from an empty snapshot.
//
// If inotify cannot be used at all, Run logs it and polls: every period
// then stats every entry.
func (m *fileMonitor) Run(ctx context.Context, events chan<- monitor.Event) error {
	s := newRunState(m)
	var evC <-chan fsnotify.Event
	var errC <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		m.log.Warn("inotify unavailable; polling instead", "err", err, "freq", m.freq)
	} else {
		defer w.Close()
		s.w, evC, errC = w, w.Events, w.Errors
	}

	s.watchBase()
	s.scan(true)
	if !s.send(ctx, events) {
		return nil
	}
	if m.ready != nil {
		select {
		case m.ready <- m.id:
		case <-ctx.Done():
			return nil
		}
	}

	tick := time.NewTicker(m.freq)
	defer tick.Stop()
	batch := time.NewTimer(coalesceDelay)
	batch.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-evC:
			if !ok {
				evC, errC = nil, nil
				s.lostWatcher()
				continue
			}
			if !s.note(ev) || armed {
				continue
			}
			batch.Reset(coalesceDelay)
			armed = true
			continue
		case err, ok := <-errC:
			if !ok {
				evC, errC = nil, nil
				s.lostWatcher()
				continue
			}
			s.watchError(err)
			if !armed {
				batch.Reset(coalesceDelay)
				armed = true
			}
			continue
		case <-batch.C:
			armed = false
			s.flush()
		case <-tick.C:
			s.scan(s.needFull || time.Since(s.lastFull) >= deepEvery*m.freq)
		case <-m.rescan:
			s.scan(true)
		}
		if !s.send(ctx, events) {
			return nil
		}
	}
}

// watchBase adds the watch on the base directory before the first listing,
// so that the first scan needs no second pass.
func (s *runState) watchBase() {
	if s.w == nil {
		return
	}
	l := &s.m.layout
	if err := s.w.Add(l.baseAbs); err != nil {
		return // the scan reports an unreadable directory; syncWatches retries
	}
	st, err := statDir(l.baseAbs)
	if err != nil {
		_ = s.w.Remove(l.baseAbs)
		return
	}
	// statSince stays zero: the first listing records the stat.
	s.dirs[l.baseAbs] = &dirState{name: l.baseName, stat: st, watched: true}
}

// syncWatches drops directories the last pass did not reach and adds a
// watch on every listed directory that has none. It returns the
// directories it added a watch to.
func (s *runState) syncWatches() []string {
	var added []string
	watchedIDs := make(map[dirID]bool, len(s.dirs))
	for _, d := range s.dirs {
		if d.watched {
			watchedIDs[d.stat.id] = true
		}
	}
	for abs, d := range s.dirs {
		if d.seen != s.gen {
			s.unwatch(abs, d)
			delete(s.dirs, abs)
			continue
		}
		if s.w == nil || d.watched || d.failing {
			continue
		}
		if watchedIDs[d.stat.id] {
			// Another path already watches this directory (symlinks):
			// inotify would report its events under that path only, so
			// this one is polled.
			continue
		}
		if err := s.w.Add(abs); err != nil {
			if !d.addFailed {
				s.log.Warn("cannot watch directory; stat()ing its entries every period", "dir", abs, "err", err)
				d.addFailed = true
			}
			continue
		}
		if d.addFailed {
			s.log.Info("directory watched again", "dir", abs)
		}
		d.watched, d.addFailed = true, false
		watchedIDs[d.stat.id] = true
		added = append(added, abs)
	}
	return added
}

// unwatch removes the watch of a directory, if any.
func (s *runState) unwatch(abs string, d *dirState) {
	if s.w != nil && d.watched {
		// It fails when inotify already dropped the watch
		// (directory deleted or moved); nothing to undo then.
		_ = s.w.Remove(abs)
	}
	d.watched = false
}

// note records one inotify event. It reports whether a batch must run.
func (s *runState) note(ev fsnotify.Event) bool {
	if d := s.dirs[ev.Name]; d != nil && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		// A directory we list was deleted or moved (reported by itself or
		// by its parent): its watch is gone, list the tree again.
		s.unwatch(ev.Name, d)
		s.structural = true
		return true
	}
	dirAbs, child := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	d := s.dirs[dirAbs]
	if d == nil || !d.watched {
		return false
	}
	l := &s.m.layout
	if !l.match(d.level, child) {
		return false
	}
	if d.level < s.last {
		// A directory that can hold matches appeared, changed or went.
		s.structural = true
		return true
	}
	if !monitor.IsVassalName(child, s.m.exts) {
		return false
	}
	s.pending[join(d.name, child)] = ev.Name
	return true
}

// watchError handles an error from inotify: events may have been lost, so
// the next batch stats everything.
func (s *runState) watchError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		s.log.Warn("inotify queue overflowed; rescanning every entry")
	} else {
		s.log.Warn("inotify error; rescanning every entry", "err", err)
	}
	s.needFull = true
}

// lostWatcher switches to polling when the watcher stops unexpectedly.
func (s *runState) lostWatcher() {
	s.log.Warn("inotify watcher stopped; polling instead")
	for _, d := range s.dirs {
		d.watched = false
	}
	s.w = nil
	s.needFull = true
}

// flush runs a batch: it stats each name inotify reported, once, then lists
// the tree again if its shape changed or events were lost.
func (s *runState) flush() {
	if len(s.pending) > 0 {
		s.restatPending()
	}
	switch {
	case s.needFull:
		s.scan(true)
	case s.structural:
		s.scan(false)
	}
	s.structural = false
}

// restatPending stats every name inotify reported since the last batch.
func (s *runState) restatPending() {
	var verified map[string]bool
	for key, abs := range s.pending {
		delete(s.pending, key)
		r := statAt(unix.AT_FDCWD, abs, s.m.noFollow)
		if r.kind == kindGone {
			// A name vanishes with its whole directory too; that is an
			// outage, not a removal. Believe it only if the directory is
			// still the one listed.
			dirAbs := filepath.Dir(abs)
			ok, done := verified[dirAbs]
			if !done {
				ok = s.dirIntact(dirAbs)
				if verified == nil {
					verified = make(map[string]bool)
				}
				verified[dirAbs] = ok
			}
			if !ok {
				s.structural = true
				continue
			}
		}
		e := s.snap[key]
		if e == nil {
			d := s.dirs[filepath.Dir(abs)]
			if r.kind == kindGone || r.kind == kindError || d == nil {
				continue
			}
			e = &entry{key: key, abs: abs, dir: d, typ: typeNone}
			s.snap[key] = e
			s.dirty = true // typeNone may be a symlink
		}
		s.apply(e, r, reasonCreated)
		if r.kind == kindGone && !e.vassal {
			delete(s.snap, key)
		}
	}
}

// dirIntact reports whether the directory at abs is still the one listed.
func (s *runState) dirIntact(abs string) bool {
	d := s.dirs[abs]
	if d == nil {
		return false
	}
	st, err := statDir(abs)
	return err == nil && st.id == d.stat.id
}
