package emperor

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// emperor-magic-exec: a config file that is executable is a program whose
// standard output is the config. uWSGI 2.0 checks access(NAME, R_OK|X_OK)
// in the forked child, after the tyrant privilege drop, for a config of
// any extension read from a file (an inline config, emperor://, wins), and
// then passes exec://NAME in place of NAME, keeping the flag the
// extension chose (--ini exec://app.ini); the vassal runs NAME through
// /bin/sh -c and reads its output.
//
// Ours decides on the spawner thread, with the same rule, and passes
// exec://PATH with the config's absolute path: uWSGI passes the bare file
// name of a directory monitor's config, which /bin/sh then looks up in
// PATH, not in the vassal's directory ("app.ini: not found"), so the
// feature never worked with dir:// monitors. A path holding characters a
// shell would read is single-quoted, which both /bin/sh (uWSGI vassals) and
// our vassal (config/exec.go) understand.
//
// Tyrant mode: the program runs as the config's owner, never as root, as
// in uWSGI: the vassal, already running as the owner, runs it. The owner
// and the executable check come from the one open of the file
// (tyrantfile.go); the vassal then runs the path, so a tenant able to swap
// the file in the moment between is running its own program as that owner
// (only a directory others may write to, without the sticky bit, allows
// it: tyrant directories should be sticky, as /tmp is).

// magicExec rewrites the vassal's config name to exec://PATH when its
// config file at path is a regular file the vassal's user may read and
// execute (tyrant mode: from the file as opened once, see openOnce).
func (s *Spec) magicExec() {
	if s.NameAt <= 0 || s.NameAt >= len(s.Argv) || s.ExecPath == "" {
		return
	}
	path := s.ExecPath
	if !filepath.IsAbs(path) {
		path = filepath.Join(s.Dir, path)
	}
	if !canReadAndRun(path, s.runner()) {
		return
	}
	s.Argv[s.NameAt] = "exec://" + quoteIfNeeded(path)
}

// canReadAndRun is uWSGI's access(R_OK|X_OK), for who (nil: the Emperor).
func canReadAndRun(path string, who *runner) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if who != nil {
		return permits(fi, who, 0o4) && permits(fi, who, 0o1)
	}
	return unix.Faccessat(unix.AT_FDCWD, path, unix.R_OK|unix.X_OK, unix.AT_EACCESS) == nil
}

// quoteIfNeeded returns p unchanged when a shell reads it as one plain
// word, otherwise single-quoted.
func quoteIfNeeded(p string) string {
	plain := true
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+,@", c)) {
			plain = false
			break
		}
	}
	if plain && p != "" {
		return p
	}
	return shellQuote(p)
}
