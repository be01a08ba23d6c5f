package files

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/monitor"
)

const (
	// defaultFreq is the safety rescan period when Options.Freq is zero.
	defaultFreq = 3 * time.Second
	// deepEvery: one periodic rescan in deepEvery stats every entry, even
	// while inotify is healthy. With the default period that is every 5
	// minutes. It is the net for changes no event and no directory entry
	// reveals (a file edited through a hard link that lives in another
	// directory); a deep scan of 1000 configs costs about 2 ms of CPU, which
	// every 30 s would be a third of the Emperor's idle budget.
	deepEvery = 100
	// coalesceDelay is how long names reported by inotify are collected
	// before each is stat()ed once. It bounds the added latency.
	coalesceDelay = 5 * time.Millisecond
	// direntBufSize is the getdents64 buffer: about a thousand entries with
	// short names per system call.
	direntBufSize = 32 << 10
	// maxFollowUps bounds the extra passes a scan makes over directories
	// whose watch it has just added.
	maxFollowUps = 4
)

// Reasons carried by events, for logs.
const (
	reasonCreated  = "created"
	reasonModified = "modified"
	reasonRemoved  = "removed"
	reasonRescan   = "rescan"
)

// fileMonitor implements both dir:// and glob://. A dir monitor is the
// special case of one level below its base directory where every name
// matches and the vassal name is the bare file name.
//
// Its fields are set by the factory and never change, so ID, String and
// Rescan may be called from any goroutine. Everything Run mutates lives in
// a runState owned by the Run goroutine.
type fileMonitor struct {
	id       string
	layout   layout
	freq     time.Duration
	noFollow bool
	exts     []string
	ready    chan<- string
	log      *slog.Logger
	rescan   chan struct{}
}

var _ monitor.Monitor = (*fileMonitor)(nil)

func newFileMonitor(id string, l layout, opts monitor.Options) *fileMonitor {
	freq := opts.Freq
	if freq <= 0 {
		freq = defaultFreq
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &fileMonitor{
		id:       id,
		layout:   l,
		freq:     freq,
		noFollow: opts.NoFollow,
		exts:     slices.Clone(opts.Extensions),
		ready:    opts.Ready,
		log:      logger.With("monitor", id),
		rescan:   make(chan struct{}, 1),
	}
}

// ID returns "dir://" plus the absolute, symlink-free directory, or
// "glob://" plus the pattern as given.
func (m *fileMonitor) ID() string { return m.id }

// String is the same as ID: file monitors hold no secret.
func (m *fileMonitor) String() string { return m.id }

// Rescan asks Run for an immediate full rescan, which stats every entry. It
// never blocks; a request made while one is pending is merged into it.
func (m *fileMonitor) Rescan() {
	select {
	case m.rescan <- struct{}{}:
	default:
	}
}

// layout says which directories a monitor reads and which names in them
// are candidates.
type layout struct {
	// baseAbs is the absolute directory read at level 0.
	baseAbs string
	// baseName is baseAbs as vassal names spell it: "" for dir:// (names
	// are bare), the literal prefix of the pattern for glob://.
	baseName string
	// comps holds, for glob://, the pattern element matched by the entries
	// of each level's directories; the last one selects the configs. It is
	// nil for dir://, which has one level where every name matches.
	comps []string
}

// levels is the number of directory levels below and including the base.
func (l *layout) levels() int {
	if l.comps == nil {
		return 1
	}
	return len(l.comps)
}

// match reports whether name, an entry of a directory at level, matches
// that level's pattern element. As glob(3) does, a leading dot must be
// matched by a leading dot in the pattern.
func (l *layout) match(level int, name string) bool {
	if l.comps == nil {
		return true
	}
	pat := l.comps[level]
	if strings.HasPrefix(name, ".") && !strings.HasPrefix(pat, ".") {
		return false
	}
	ok, err := filepath.Match(pat, name)
	return ok && err == nil
}

// join appends a child name to a directory path or name form without
// cleaning: "" + c is c, "/" + c is "/c", d + c is "d/c".
func join(dir, child string) string {
	switch {
	case dir == "":
		return child
	case strings.HasSuffix(dir, "/"):
		return dir + child
	}
	return dir + "/" + child
}
