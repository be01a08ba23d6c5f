package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writePidfile writes the Emperor's pid and a newline to path, as uWSGI
// does: a plain pidfile is truncated and written in place; a safe one is
// written to a temporary file beside it and renamed over it, so a reader
// never sees it empty or half written (uWSGI's safe-pidfile is only
// written later, in place). An empty path writes nothing.
func writePidfile(log *slog.Logger, option, path string, safe bool) error {
	if path == "" {
		return nil
	}
	log.Info("writing pidfile", "option", option, "file", path, "pid", os.Getpid())
	text := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if !safe {
		if err := os.WriteFile(path, text, 0o644); err != nil {
			return fmt.Errorf("%s: %w", option, err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("%s: %w", option, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(0o644); err == nil {
		_, err = tmp.Write(text)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", option, path, err)
	}
	return nil
}

// writeStartPidfiles writes pidfile and safe-pidfile (uWSGI: before
// privileges drop).
func (p *lifecycleSettings) writeStartPidfiles(log *slog.Logger) error {
	if err := writePidfile(log, "pidfile", p.pidfile, false); err != nil {
		return err
	}
	return writePidfile(log, "safe-pidfile", p.safePidfile, true)
}

// writeLatePidfiles writes pidfile2 and safe-pidfile2 (uWSGI: after
// privileges drop).
func (p *lifecycleSettings) writeLatePidfiles(log *slog.Logger) error {
	if err := writePidfile(log, "pidfile2", p.pidfile2, false); err != nil {
		return err
	}
	return writePidfile(log, "safe-pidfile2", p.safePidfile2, true)
}

// removePidfiles runs at a clean exit. As in uWSGI, pidfile, pidfile2,
// safe-pidfile and safe-pidfile2 go only with vacuum; the emperor-pidfile
// goes always (uWSGI leaves it). A file that no longer holds this pid
// belongs to someone else and stays.
func (p *lifecycleSettings) removePidfiles(log *slog.Logger) {
	files := []struct{ option, path string }{{"emperor-pidfile", p.emperorPidfile}}
	if p.vacuum {
		files = append(files, []struct{ option, path string }{
			{"pidfile", p.pidfile}, {"pidfile2", p.pidfile2}, {"safe-pidfile", p.safePidfile}, {"safe-pidfile2", p.safePidfile2},
		}...)
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
			continue
		}
		if err := os.Remove(f.path); err != nil {
			log.Warn("pidfile left behind", "option", f.option, "file", f.path, "err", err)
			continue
		}
		log.Info("pidfile removed", "option", f.option, "file", f.path)
	}
}
