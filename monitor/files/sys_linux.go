package files

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/regular"
	"github.com/emperor-dev/emperor/monitor"
)

// Directory entry types (d_type of getdents64).
const (
	typeUnknown = unix.DT_UNKNOWN
	typeDir     = unix.DT_DIR
	typeLink    = unix.DT_LNK
	// typeNone marks an entry not yet seen in a directory listing (learnt
	// from an inotify event): the next listing stats it again.
	typeNone = 0xff
)

// Offsets in struct linux_dirent64.
const (
	direntIno    = 0
	direntReclen = 16
	direntType   = 18
	direntName   = 19
)

// openDir opens a directory for listing.
func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// dirID is the identity of a directory.
type dirID struct{ dev, ino uint64 }

// dirStat is what a stat of a directory says about its entries: creating,
// removing or renaming an entry changes its mtime and ctime.
type dirStat struct {
	id           dirID
	mtime, ctime int64
}

func dirStatOf(st *unix.Stat_t) dirStat {
	return dirStat{
		id:    dirID{uint64(st.Dev), uint64(st.Ino)},
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}
}

// fstatDir stats the directory open on fd.
func fstatDir(fd int, path string) (dirStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return dirStat{}, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	return dirStatOf(&st), nil
}

// statDir stats the directory at path (symlinks followed).
func statDir(path string) (dirStat, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return dirStat{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return dirStat{}, &os.PathError{Op: "stat", Path: path, Err: unix.ENOTDIR}
	}
	return dirStatOf(&st), nil
}

// isDirAt reports whether name, relative to the directory open on dirfd, is
// a directory or a symlink to one.
func isDirAt(dirfd int, name string) bool {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, 0); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// readDirents calls fn for every entry of the directory open on fd except
// "." and "..", with the raw name, inode and type from getdents64. name
// aliases buf and is valid only during the call. Nothing is allocated.
func readDirents(fd int, buf []byte, fn func(name []byte, ino uint64, typ uint8)) error {
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("getdents64", err)
		}
		if n <= 0 {
			return nil
		}
		for off := 0; off < n; {
			if off+direntName > n {
				return errors.New("getdents64: truncated entry")
			}
			reclen := int(binary.NativeEndian.Uint16(buf[off+direntReclen:]))
			if reclen <= direntName || off+reclen > n {
				return errors.New("getdents64: malformed entry")
			}
			ino := binary.NativeEndian.Uint64(buf[off+direntIno:])
			typ := buf[off+direntType]
			name := buf[off+direntName : off+reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			off += reclen
			if len(name) == 0 || (name[0] == '.' && (len(name) == 1 || (len(name) == 2 && name[1] == '.'))) {
				continue
			}
			fn(name, ino, typ)
		}
	}
}

// statKind classifies what a stat found.
type statKind uint8

const (
	// kindVassal: a config file (a readable regular file, or with NoFollow
	// a symlink, dangling or not).
	kindVassal statKind = iota
	// kindOther: the name exists but is no config; statResult.why says why
	// (a directory, a FIFO, a dangling symlink or a symlink loop when
	// following, a file the Emperor may not read).
	kindOther
	// kindGone: no such name.
	kindGone
	// kindError: stat failed for another reason; nothing is known.
	kindError
)

// statResult is one stat of a candidate.
type statResult struct {
	kind  statKind
	ver   monitor.Version
	owner monitor.Owner
	// why is, for kindOther, the refusal a user reads, such as "not a
	// regular file (fifo)".
	why string
	err error
}

// Refusals of names that exist but are no config.
const (
	whyDangling = "dangling symlink"
	whyLoop     = "symlink loop"
	whyDenied   = "permission denied"
)

// isDir is what a listing that shows a directory says about it, without a
// stat: directories are never configs.
var isDir = statResult{kind: kindOther, why: regular.NotRegular(unix.S_IFDIR)}

// statAt stats name relative to dirfd (unix.AT_FDCWD for an absolute
// name), following symlinks unless noFollow. A regular file is a config
// only if the Emperor may read it.
func statAt(dirfd int, name string, noFollow bool) statResult {
	var st unix.Stat_t
	flags, op := 0, "stat"
	if noFollow {
		flags, op = unix.AT_SYMLINK_NOFOLLOW, "lstat"
	}
	err := fstatat(dirfd, name, &st, flags)
	switch err {
	case nil:
	case unix.ELOOP:
		return statResult{kind: kindOther, why: whyLoop}
	case unix.ENOENT:
		// Following a dangling symlink fails so too: the entry exists
		// but is no config.
		var lst unix.Stat_t
		if !noFollow && fstatat(dirfd, name, &lst, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			lst.Mode&unix.S_IFMT == unix.S_IFLNK {
			return statResult{kind: kindOther, why: whyDangling}
		}
		return statResult{kind: kindGone}
	case unix.ENOTDIR:
		return statResult{kind: kindGone}
	default:
		return statResult{kind: kindError, err: &os.PathError{Op: op, Path: name, Err: err}}
	}
	r := statResult{
		ver: monitor.Version{
			ModTime: st.Mtim.Nano(),
			Size:    int64(st.Size),
			Inode:   uint64(st.Ino),
		},
		owner: monitor.Owner{UID: st.Uid, GID: st.Gid},
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		r.kind = kindVassal
		if unix.Faccessat(dirfd, name, unix.R_OK, unix.AT_EACCESS) == unix.EACCES {
			r.kind, r.why = kindOther, whyDenied
		}
	case unix.S_IFLNK:
		// Only lstat returns a symlink.
		r.kind = kindVassal
	default:
		r.kind, r.why = kindOther, regular.NotRegular(st.Mode)
	}
	return r
}

// fstatat is unix.Fstatat retried on EINTR.
func fstatat(dirfd int, name string, st *unix.Stat_t, flags int) error {
	for {
		if err := unix.Fstatat(dirfd, name, st, flags); err != unix.EINTR {
			return err
		}
	}
}

// isGone reports whether an open or stat error means the path no longer
// exists.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}
