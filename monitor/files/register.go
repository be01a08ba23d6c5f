// Package files implements the file-based imperial monitors: dir://PATH
// (every vassal config directly inside one directory) and glob://PATTERN
// (every vassal config a shell pattern matches).
//
// A vassal is a name that passes monitor.IsVassalName and, by default, a
// regular file or a symlink to one; with Options.NoFollow, a regular file
// or a symlink of any kind (dangling included), described by lstat. A new
// vassal is a Touch, a change of its (mtime in ns, size, inode) or of its
// owner a Touch "modified", its disappearance a Destroy. Directories and
// other names are ignored.
//
// Both monitors are event driven: inotify (through fsnotify) reports
// changes and only the names concerned are stat()ed again, after
// coalescing bursts for a few milliseconds. A periodic safety rescan,
// every Options.Freq (3 s by default), catches what inotify cannot see.
// It is cheap while inotify is healthy: a watched directory whose own stat
// is unchanged is not even listed (only symlinks in it are stat()ed, when
// following, since their targets live elsewhere); one that changed is
// listed with getdents and the names and inodes diffed against the
// snapshot, stat()ing only what changed. Every entry is stat()ed in full
// at start, on Rescan, after an inotify overflow or error, for directories
// that cannot be watched, and every 100 periods (5 minutes by default) as a safety net (for changes
// made through a hard link in another directory, say).
//
// A directory that cannot be read is an outage: it is logged, nothing is
// emitted, and it is retried every period. Neither monitor ever changes
// the process's working directory.
package files

import "github.com/emperor-dev/emperor/monitor"

func init() {
	monitor.Register(monitor.Scheme{Name: "dir", New: NewDir})
	monitor.Register(monitor.Scheme{Name: "glob", New: NewGlob})
}
