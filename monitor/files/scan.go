package files

import (
	"errors"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/monitor"
)

// confirmDelay is how long after first listing a directory with a given
// stat a second listing must come before that stat is trusted to prove the
// entries unchanged. It exceeds the timestamp granularity of common
// filesystems (a jiffy on ext4, xfs, tmpfs; up to 2 s on FAT).
const confirmDelay = 2 * time.Second

// scan brings the snapshot up to date, queueing events for the
// differences.
//
// With full set, every directory is listed and every candidate stat()ed.
// Otherwise (the cheap scan, while inotify is healthy):
//   - a watched directory whose stat (mtime, ctime, inode) is unchanged and
//     confirmed is not listed at all; only its entries that may be symlinks
//     (when following) are stat()ed;
//   - a watched directory that changed is listed, and only new names,
//     names whose inode or type changed, possible symlinks (when
//     following) and names whose last stat failed are stat()ed;
//   - an unwatched directory is listed and all its entries stat()ed.
//
// In-place changes of regular files are left to inotify and, as a safety
// net, to the full scan.
//
// It returns false when the base directory could not be read; then nothing
// is emitted and the snapshot is kept.
func (s *runState) scan(full bool) bool {
	if !s.walkAll(full, nil) {
		return false
	}
	// A directory whose watch was added after it was listed may have
	// changed in between; list it again, stat()ing everything in it.
	for range maxFollowUps {
		added := s.syncWatches()
		if len(added) == 0 {
			break
		}
		if !s.walkAll(false, added) {
			return false
		}
	}
	if full {
		s.needFull = false
		s.lastFull = time.Now()
	}
	return true
}

// walkAll makes one pass over the directory tree and drops what it did not
// see. Entries in directories listed in force are all stat()ed.
func (s *runState) walkAll(full bool, force []string) bool {
	s.gen++
	s.listed = false
	l := &s.m.layout
	if !s.walkDir(l.baseAbs, l.baseName, 0, full, force) {
		return false
	}
	s.sweep()
	return true
}

// walkDir lists one directory at level, or finds it unchanged, and recurses
// into matching subdirectories. It returns false if the directory could not
// be read.
func (s *runState) walkDir(abs, name string, level int, full bool, force []string) bool {
	d := s.dirs[abs]
	forced := full || d == nil || !d.watched || slices.Contains(force, abs)
	if !forced && d.confirmed && !d.failing {
		if st, err := statDir(abs); err == nil && st == d.stat {
			d.seen, d.kept, d.unchanged = s.gen, s.gen, s.gen
			for _, c := range d.subdirs {
				s.walkDir(join(abs, c), join(name, c), level+1, full, force)
			}
			return true
		}
	}

	s.listed = true
	fd, err := openDir(abs)
	if err != nil {
		if level > 0 && isGone(err) {
			// Removed since its parent was listed: so are its entries.
			return true
		}
		s.dirFailed(abs, name, level, err)
		return false
	}
	st, err := fstatDir(fd, abs)
	if err != nil {
		unix.Close(fd)
		s.dirFailed(abs, name, level, err)
		return false
	}
	if d == nil {
		d = &dirState{}
		s.dirs[abs] = d
	}
	if d.watched && d.stat.id != st.id {
		// Replaced by another directory: the watch follows the old one.
		s.unwatch(abs, d)
		forced = true
	}
	if d.failing {
		s.log.Info("directory readable again", "dir", abs)
		d.failing = false
	}
	now := time.Now()
	if st != d.stat || d.statSince.IsZero() {
		d.stat, d.statSince, d.confirmed = st, now, false
	} else if now.Sub(d.statSince) >= confirmDelay {
		d.confirmed = true
	}
	d.name, d.level, d.seen = name, level, s.gen

	var subdirs []string
	err = readDirents(fd, s.buf, func(nb []byte, ino uint64, typ uint8) {
		if level == s.last {
			s.observe(fd, d, abs, nb, ino, typ, forced)
			return
		}
		if typ != typeDir && typ != typeLink && typ != typeUnknown {
			return
		}
		child := string(nb)
		if !s.m.layout.match(level, child) {
			return
		}
		if typ != typeDir && !isDirAt(fd, child) {
			return
		}
		subdirs = append(subdirs, child)
	})
	unix.Close(fd)
	if err != nil {
		d.confirmed, d.statSince = false, time.Time{}
		s.dirFailed(abs, name, level, err)
		return false
	}
	d.subdirs = subdirs
	for _, c := range subdirs {
		s.walkDir(join(abs, c), join(name, c), level+1, full, force)
	}
	return true
}

// observe handles one listed entry of a directory at the candidate level.
// nb aliases the listing buffer.
func (s *runState) observe(fd int, d *dirState, dirAbs string, nb []byte, ino uint64, typ uint8, forced bool) {
	var e *entry
	if d.name == "" {
		e = s.snap[string(nb)] // no allocation
	} else {
		e = s.snap[join(d.name, string(nb))]
	}
	if e != nil {
		e.seen, e.dir = s.gen, d
		if e.ignored {
			return
		}
		need := forced || e.statErr || e.dino != ino || e.typ != typ ||
			(!s.m.noFollow && (typ == typeLink || typ == typeUnknown))
		e.dino, e.typ = ino, typ
		if need {
			s.apply(e, s.statListed(fd, string(nb), typ), reasonRescan)
		}
		return
	}
	name := string(nb)
	e = &entry{key: join(d.name, name), dir: d, dino: ino, typ: typ, seen: s.gen}
	s.snap[e.key] = e
	if !s.m.layout.match(d.level, name) || !monitor.IsVassalName(name, s.m.exts) {
		e.ignored = true
		return
	}
	e.abs = join(dirAbs, name)
	s.apply(e, s.statListed(fd, name, typ), reasonRescan)
}

// statListed stats a candidate a listing of the directory open on fd shows
// with type typ. A directory is never a config, and needs no stat to say
// so.
func (s *runState) statListed(fd int, name string, typ uint8) statResult {
	if typ == typeDir {
		return isDir
	}
	return statAt(fd, name, s.m.noFollow)
}

// dirFailed records a directory that could not be read: the entries in it
// and below it are kept as they were, and the failure is logged once per
// outage.
func (s *runState) dirFailed(abs, name string, level int, err error) {
	d := s.dirs[abs]
	if d == nil {
		d = &dirState{name: name, level: level}
		s.dirs[abs] = d
	}
	for p, sub := range s.dirs {
		if p == abs || (strings.HasPrefix(p, abs) && (strings.HasSuffix(abs, "/") || p[len(abs)] == '/')) {
			sub.seen, sub.kept = s.gen, s.gen
		}
	}
	if d.failing {
		s.log.Debug("directory still unreadable", "dir", abs, "err", err)
		return
	}
	d.failing = true
	if level == 0 && s.m.layout.comps != nil && errors.Is(err, unix.ENOENT) && len(s.snap) == 0 {
		s.log.Info("pattern base directory does not exist yet", "dir", abs)
		return
	}
	s.log.Warn("cannot read directory; keeping its vassals, retrying every period", "dir", abs, "err", err)
}
