package emperor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Which program a vassal runs. uWSGI 2.0 builds the vassal's argv with
// argv[0] = emperor-wrapper, or binary-path without one, then execvp's
// each emperor-wrapper-override in turn, then argv[0], then each
// emperor-wrapper-fallback, until one exec succeeds (a process that no
// exec could replace exits 26).
//
// Ours picks before the fork, on the spawner thread, per spawn: the first
// of the same list that exists, is a regular file and is executable by the
// user the vassal runs as (looked up in the vassal's PATH when it has no
// '/', relative to the vassal's directory when it is relative). The
// vassal's log line says which one runs; when none can, the spawn fails
// with one line naming each one tried and why, and the vassal is penalised
// like any failed spawn.

// binary is one program a vassal may run, with the option that named it.
type binary struct {
	path   string // as configured
	option string // binary-path, emperor-wrapper, emperor-wrapper-override, emperor-wrapper-fallback
}

// String is "emperor-wrapper-fallback /usr/bin/uwsgi".
func (b binary) String() string { return b.option + " " + b.path }

// binaries lists, in the order they are tried, the programs a vassal may
// run.
func (o *Options) binaries() []binary {
	out := make([]binary, 0, 1+len(o.WrapperOverride)+len(o.WrapperFallback))
	for _, p := range o.WrapperOverride {
		out = append(out, binary{path: p, option: "emperor-wrapper-override"})
	}
	if o.Wrapper != "" {
		out = append(out, binary{path: o.Wrapper, option: "emperor-wrapper"})
	} else {
		out = append(out, binary{path: o.Binary, option: "binary-path"})
	}
	for _, p := range o.WrapperFallback {
		out = append(out, binary{path: p, option: "emperor-wrapper-fallback"})
	}
	return out
}

// wrapped reports whether any wrapper option is set.
func (o *Options) wrapped() bool {
	return o.Wrapper != "" || len(o.WrapperOverride) > 0 || len(o.WrapperFallback) > 0
}

// runner is who a vassal runs as, for the executable check.
type runner struct {
	uid, gid uint32
	groups   []uint32
}

// pickBinary returns the first of s.Binaries the vassal can run, with its
// resolved path, or an error listing each one tried. env is the vassal's
// environment (its PATH).
func (s *Spec) pickBinary(env []string) (binary, string, error) {
	who := s.runner()
	var tried []string
	for _, b := range s.Binaries {
		p, err := lookBinary(b.path, s.Dir, pathOf(env), who)
		if err == nil {
			return b, p, nil
		}
		tried = append(tried, fmt.Sprintf("%s (%v)", b, err))
	}
	return binary{}, "", fmt.Errorf("no vassal binary can run: tried %s", strings.Join(tried, "; "))
}

// runner is who the vassal runs as: its tyrant credential, its user
// namespace's owner, or the Emperor itself.
func (s *Spec) runner() *runner {
	switch {
	case s.Credential != nil:
		return &runner{uid: s.Credential.Uid, gid: s.Credential.Gid, groups: s.Credential.Groups}
	case s.Namespaces.Has(unix.CLONE_NEWUSER):
		return &runner{uid: uint32(s.HostUID), gid: uint32(s.HostGID)}
	}
	return nil // the Emperor's own identity
}

// pathOf returns the PATH of env, or execvp's default.
func pathOf(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			return v
		}
	}
	return "/bin:/usr/bin"
}

// lookBinary resolves name as execvp would in a process started in dir
// with PATH path, and checks that who can run it.
func lookBinary(name, dir, path string, who *runner) (string, error) {
	if name == "" {
		return "", errors.New("empty")
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	if strings.Contains(name, "/") {
		p := abs(name)
		return p, canRun(p, who)
	}
	var first error
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := abs(filepath.Join(d, name))
		err := canRun(p, who)
		if err == nil {
			return p, nil
		}
		if first == nil && !errors.Is(err, os.ErrNotExist) {
			first = err // found but not runnable: say so rather than "not found"
		}
	}
	if first != nil {
		return "", first
	}
	return "", errors.New("not found in PATH")
}

// canRun checks that p is a regular file who may execute (nil: the
// Emperor's own identity, whose answer access(2) gives, noexec mounts
// included).
func canRun(p string, who *runner) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", p, os.ErrNotExist)
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", p)
	}
	if who != nil {
		if !permits(fi, who, 0o1) {
			return fmt.Errorf("%s: not executable by uid %d", p, who.uid)
		}
		return nil
	}
	if err := unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS); err != nil {
		return fmt.Errorf("%s: not executable: %w", p, err)
	}
	return nil
}

// permits reports whether the mode bits of fi give who the permission
// bit (1 execute, 2 write, 4 read), as the kernel checks for a non-root
// user: the owner's bits for the owner, the group's for a member, the
// others' else.
func permits(fi os.FileInfo, who *runner, bit os.FileMode) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return modePermits(fi.Mode().Perm(), st.Uid, st.Gid, who, bit)
}

// modePermits is permits on raw stat fields.
func modePermits(perm os.FileMode, fileUID, fileGID uint32, who *runner, bit os.FileMode) bool {
	if who.uid == 0 {
		return bit != 0o1 || perm&0o111 != 0 // root: anything, execute if anyone may
	}
	switch {
	case who.uid == fileUID:
		return perm&(bit<<6) != 0
	case who.gid == fileGID || containsGID(who.groups, fileGID):
		return perm&(bit<<3) != 0
	}
	return perm&bit != 0
}

func containsGID(groups []uint32, gid uint32) bool {
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}
