// Package monitor defines imperial monitors: sources that say which vassals
// should exist. A monitor only produces events; it never touches processes.
//
// Polling sources keep their own last snapshot and emit the difference; push
// sources emit what they receive. A source that fails emits nothing: an
// outage is never read as "every vassal was removed".
package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Key identifies a vassal: the monitor that owns it and its name within that
// monitor. Two directories holding app.ini are two vassals (uWSGI keys by
// name alone, bug B15).
type Key struct {
	// Monitor is the ID of the owning monitor (Monitor.ID).
	Monitor string
	// Name is the vassal's name as the monitor sees it: the bare file name
	// for dir://, the path as the pattern matched it for glob://.
	Name string
}

func (k Key) String() string { return k.Name + " (" + k.Monitor + ")" }

// Op is what an event asks for.
type Op uint8

const (
	// Touch: the vassal should exist with this config. A Touch for a known
	// key with a different Version is a config change.
	Touch Op = iota + 1
	// Destroy: the vassal should no longer exist.
	Destroy
)

func (o Op) String() string {
	switch o {
	case Touch:
		return "touch"
	case Destroy:
		return "destroy"
	}
	return fmt.Sprintf("op(%d)", o)
}

// Owner is the uid/gid a vassal runs as in tyrant mode: the owner of its
// config file, or what a database row or message supplies.
type Owner struct {
	UID, GID uint32
}

// Version tells whether a config changed. Two events for one key with equal
// Versions describe the same config. File monitors fill every field they
// know; inline configs carry a content hash in Hash.
type Version struct {
	// ModTime is the modification time in nanoseconds since the epoch.
	ModTime int64
	// Size in bytes.
	Size int64
	// Inode of the config (0 when unknown).
	Inode uint64
	// Hash of inline config text (empty for file configs).
	Hash string
}

// Event is one observation of a monitor.
type Event struct {
	Op  Op
	Key Key
	// Path is the absolute path of the config file (file monitors), used to
	// choose the vassal's working directory and for logs.
	Path string
	// Config holds the config text when the monitor supplies it inline
	// (databases, messages); nil for file configs.
	Config []byte
	// Version identifies this version of the config.
	Version Version
	// Owner is set when the monitor knows who owns the config.
	Owner *Owner
	// Reason says, for logs, what the monitor saw ("created", "modified",
	// "removed", "rescan").
	Reason string
}

// A Monitor watches one configuration source.
type Monitor interface {
	// ID is unique among the Emperor's monitors and stable for the life of
	// the process; it is part of every vassal Key the monitor emits. It may
	// contain secrets (a DB URI); use String for display.
	ID() string
	// String is the monitor for logs and stats, with any secret redacted.
	String() string
	// Run emits events until ctx is cancelled. The first complete scan is
	// followed by one value on the ready channel passed in Options (so the
	// Emperor knows when its initial reconcile is done). Run returns nil on
	// cancellation; any other error is fatal to the monitor.
	Run(ctx context.Context, events chan<- Event) error
	// Rescan asks for an immediate full rescan (SIGWINCH). It never blocks.
	Rescan()
}

// Reporter is implemented by monitors that have figures of their own to
// report (the push monitors' journal, for one). Status is safe to call from
// any goroutine at any time, never blocks on the monitor's work, and
// returns a fresh map of JSON-encodable values with snake_case keys, for
// the stats server and metrics.
type Reporter interface {
	Status() map[string]any
}

// Options configure every monitor. What only some monitors read lives in
// their own package, as the settings of their scheme (see Scheme.Settings),
// and reaches them through Settings.
type Options struct {
	// Freq is the period of the safety rescan (emperor-freq).
	Freq time.Duration
	// NoFollow: do not follow symlinks (emperor-nofollow).
	NoFollow bool
	// Extensions are extra vassal extensions (emperor-extra-extension), with
	// or without the leading dot.
	Extensions []string
	// Tyrant: vassals run as the owner the monitor reports, never root
	// (emperor-tyrant); monitors that read an owner from a row or a message
	// refuse a vassal without one.
	Tyrant bool
	// Ready receives the monitor's ID once its first scan is complete. It may
	// be nil. Sends on it must not block forever: the channel is buffered by
	// the caller for every monitor.
	Ready chan<- string
	// Logger for the monitor's own messages.
	Logger *slog.Logger
	// Settings are the schemes' own settings (NewSettings, then the
	// Emperor's options); a scheme missing from it, or a nil Settings, means
	// that scheme's defaults.
	Settings SchemeSettings
}

// Extensions known to be vassal configs, and the argv flag each selects.
var knownExtensions = []struct{ ext, flag string }{
	{".xml", "--xml"},
	{".ini", "--ini"},
	{".yml", "--yaml"},
	{".yaml", "--yaml"},
	{".js", "--json"},
	{".json", "--json"},
}

// MaxNameLen is the longest vassal name accepted, as in uWSGI (254 bytes).
const MaxNameLen = 254

// IsVassalName reports whether name is a vassal config: a known extension
// (case-sensitive, as uWSGI) or one of extra, and shorter than 255 bytes.
func IsVassalName(name string, extra []string) bool {
	if len(name) > MaxNameLen {
		return false
	}
	if configFlag(name, extra) == "" {
		return false
	}
	return true
}

// ConfigFlag returns the uWSGI option that loads name: --ini, --xml, --yaml,
// --json, --config for an extra extension (it wins, as in uWSGI), and
// --inherit when nothing matches.
func ConfigFlag(name string, extra []string) string {
	if f := configFlag(name, extra); f != "" {
		return f
	}
	return "--inherit"
}

func configFlag(name string, extra []string) string {
	for _, e := range extra {
		if e == "" {
			continue
		}
		if !strings.HasPrefix(e, ".") {
			e = "." + e
		}
		if strings.HasSuffix(name, e) {
			return "--config"
		}
	}
	for _, k := range knownExtensions {
		if strings.HasSuffix(name, k.ext) {
			return k.flag
		}
	}
	return ""
}
