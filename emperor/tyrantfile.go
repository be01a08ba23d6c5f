package emperor

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/regular"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/tyrant"
)

// In tyrant mode a config file decides who its vassal runs as, so the
// credential, the directory and the text the vassal reads must all come
// from one file, opened once. uWSGI takes the owner from one stat, the
// directory from the path and lets the vassal reopen the path (the
// reference's B34): a tenant who can place a symlink, or flip one on the
// way, runs another tenant's config in its own directory, or its own
// config as another tenant.
//
// The rule, applied on the spawner thread at every spawn and off the loop
// at every change:
//
//   - The config is opened once, non-blocking, and must be a regular file
//     (a FIFO, a directory or a device is refused).
//   - It runs as the owner of the file opened (with
//     emperor-tyrant-nofollow: the owner of the directory entry), never
//     root.
//   - A directory entry that is a symlink is followed only when its owner
//     is root or the owner of the file it reaches: a tenant cannot point
//     at another tenant's config (with emperor-tyrant-nofollow the file
//     reached must belong to the link's owner, or its text would leak).
//   - The vassal gets the text read from that open file over its config
//     channel (emperor://NAME), never the path, and runs in the directory
//     the file really is in.

// tyrantConfig is a config file as opened once.
type tyrantConfig struct {
	text  []byte
	dir   string // the directory the file really is in
	owner monitor.Owner
	path  string // where it really is
	// runnable: its owner may read and execute it (emperor-magic-exec).
	runnable bool
}

// openTyrantConfig opens path once and returns its text, its directory and
// the owner its vassal runs as, or a *tyrant.Error saying why it is
// refused. limit bounds the text (a config frame).
func openTyrantConfig(name, path string, noFollow bool, limit int) (tyrantConfig, error) {
	refuse := func(format string, a ...any) (tyrantConfig, error) {
		return tyrantConfig{}, &tyrant.Error{Vassal: name, Reason: fmt.Sprintf(format, a...)}
	}
	var entry unix.Stat_t
	if err := unix.Lstat(path, &entry); err != nil {
		return refuse("%s: %v", path, os.NewSyscallError("lstat", err))
	}
	f, err := regular.Open(path) // non-blocking: a FIFO never stalls the spawner
	if err != nil {
		return refuse("%v", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return refuse("%s: %v", path, os.NewSyscallError("fstat", err))
	}
	owner := monitor.Owner{UID: st.Uid, GID: st.Gid}
	if entry.Mode&unix.S_IFMT == unix.S_IFLNK {
		switch {
		case noFollow && entry.Uid != st.Uid:
			return refuse("%s: the symlink's owner (uid %d) does not own the file it points to (uid %d): its text is not theirs to run", path, entry.Uid, st.Uid)
		case noFollow:
			owner = monitor.Owner{UID: entry.Uid, GID: entry.Gid}
		case entry.Uid != 0 && entry.Uid != st.Uid:
			return refuse("%s: a symlink of uid %d points to a config of uid %d: only root or the config's owner may link it", path, entry.Uid, st.Uid)
		}
	}
	text, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return refuse("%s: %v", path, err)
	}
	if len(text) > limit {
		return refuse("%s: larger than the %d bytes a config frame holds", path, limit)
	}
	// thread-self, not self: on the spawner thread, whose fd table is its
	// own (spawntable_linux.go), /proc/self/fd shows the process's.
	real, err := os.Readlink("/proc/thread-self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return refuse("%s: where is it: %v", path, err)
	}
	who := &runner{uid: owner.UID, gid: owner.GID}
	perm := os.FileMode(st.Mode) & os.ModePerm
	runnable := modePermits(perm, st.Uid, st.Gid, who, 0o4) && modePermits(perm, st.Uid, st.Gid, who, 0o1)
	return tyrantConfig{text: text, dir: filepath.Dir(real), owner: owner, path: real, runnable: runnable}, nil
}

// openOnce fills a tyrant-mode Spec from its config file, opened once
// (see above): the text it passes, the directory it runs in and the
// credential it runs with. It runs on the spawner thread.
func (s *Spec) openOnce() error {
	tc, err := openTyrantConfig(s.Key.Name, s.ConfigPath, s.NoFollow, s.ConfigLimit)
	if err != nil {
		return err
	}
	cred, err := tyrant.Credential(s.Key.Name, &tc.owner)
	if err != nil {
		return err
	}
	s.Config, s.Dir, s.Owner = tc.text, tc.dir, &tc.owner
	s.runAs(cred)
	if s.MagicExec && tc.runnable && s.NameAt > 0 && s.NameAt < len(s.Argv) {
		// Its owner's program, run by the vassal as its owner
		// (magicexec.go): no text to pass.
		s.Config = nil
		s.Argv[s.NameAt] = "exec://" + quoteIfNeeded(tc.path)
	}
	return nil
}

// configRead is a tyrant-mode config read again off the loop after a
// change, for a reload.
type configRead struct {
	key  monitor.Key
	gen  uint64
	proc *process
	cfg  tyrantConfig
	err  error
}

// reread reads a running tyrant-mode vassal's changed config off the loop;
// configReread then reloads it with the new text, or restarts it when its
// owner changed or it is now refused.
func (e *Emperor) reread(v *vassal) {
	key, gen, p, path := v.ev.Key, v.gen, v.proc, v.ev.Path
	noFollow, limit := e.opts.TyrantNoFollow, e.configLimit()
	go func() {
		tc, err := openTyrantConfig(key.Name, path, noFollow, limit)
		select {
		case e.rereads <- configRead{key: key, gen: gen, proc: p, cfg: tc, err: err}:
		case <-e.done:
		}
	}()
}

// configReread applies a config read again by reread.
func (e *Emperor) configReread(r configRead) {
	v := e.vassals[r.key]
	if v == nil || v.gen != r.gen || v.proc != r.proc || v.state != Running {
		return // moved on: a spawn reads it anew
	}
	switch {
	case r.err != nil:
		v.stopCause = "refused"
		e.stop(v, Restart, r.err.Error())
	case !sameOwner(&r.cfg.owner, v.owner):
		v.stopCause = "owner_changed"
		e.stop(v, Restart, "tyrant: the config's owner changed")
	case e.opts.MagicExec && r.cfg.runnable != (v.proc.cfg < 0):
		// Its command line says emperor:// or exec://: only a new one
		// changes that.
		v.stopCause = "config_changed"
		e.stop(v, Restart, "emperor-magic-exec: the config's executable bit changed")
	default:
		v.proc.config = r.cfg.text
		e.reload(v, "config changed ("+v.ev.Reason+")")
	}
}
