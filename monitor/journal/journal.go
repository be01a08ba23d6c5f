// Package journal keeps the desired state of a push monitor (amqp://,
// zmq://) on disk, so that vassals pushed by messages survive an Emperor
// restart: uWSGI forgets them (reference 3.6, 3.7, bug B18).
//
// A journal is one JSON file holding every entry. Each Save writes the
// whole file to a temporary file in the same directory, fsyncs it, renames
// it over the old one and fsyncs the directory, so a crash at any point
// leaves either the old or the new state, never a torn file. The files are
// small (one entry per pushed vassal), so rewriting them is cheap.
package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/emperor-dev/emperor/monitor"
)

// Entry is one pushed vassal as last asked for.
type Entry struct {
	// Name is the vassal's name within its monitor.
	Name string `json:"name"`
	// Path is the config file, for file-based entries.
	Path string `json:"path,omitempty"`
	// Config is the config text, for inline entries (direct configs and
	// fetched URLs).
	Config []byte `json:"config,omitempty"`
	// Owner is the uid/gid the message gave (tyrant mode).
	Owner *monitor.Owner `json:"owner,omitempty"`
	// Source says where it came from, for logs: "path", "url", "config".
	Source string `json:"source,omitempty"`
}

// fileFormat is the on-disk document.
type fileFormat struct {
	// Monitor is the monitor's display string, for people reading the file.
	Monitor string  `json:"monitor"`
	Entries []Entry `json:"entries"`
}

// Journal is the state file of one monitor. It is used by one goroutine.
type Journal struct {
	path    string
	display string
}

// Open returns the journal of the monitor whose ID is id, in dir, creating
// dir (mode 0700) if needed. The file name is a hash of the ID, which may
// hold credentials; display (the redacted form) is written inside the file
// for people.
func Open(dir, id, display string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	sum := sha256.Sum256([]byte(id))
	name := "push-" + hex.EncodeToString(sum[:8]) + ".json"
	return &Journal{path: filepath.Join(dir, name), display: display}, nil
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Load reads the entries. A missing file is an empty journal.
func (j *Journal) Load() ([]Entry, error) {
	b, err := os.ReadFile(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", j.path, err)
	}
	return Decode(b)
}

// Decode parses a journal document; errors name what is wrong.
func Decode(b []byte) ([]Entry, error) {
	var f fileFormat
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	for i, e := range f.Entries {
		if e.Name == "" {
			return nil, fmt.Errorf("journal: entry %d has no name", i)
		}
		if (e.Path == "") == (e.Config == nil) {
			return nil, fmt.Errorf("journal: entry %q needs exactly one of path and config", e.Name)
		}
	}
	return f.Entries, nil
}

// Save replaces the journal with entries, atomically and durably.
func (j *Journal) Save(entries []Entry) error {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].Name < sorted[b].Name })
	b, err := json.MarshalIndent(fileFormat{Monitor: j.display, Entries: sorted}, "", "  ")
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	if err := writeAtomic(j.path, append(b, '\n')); err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	return nil
}

// writeAtomic writes data to a temporary file beside path, fsyncs it,
// renames it over path and fsyncs the directory.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
