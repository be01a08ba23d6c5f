package dbscan

import (
	"log/slog"
	"slices"
	"time"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/monitor"
)

// DefaultFreq is the scan period when Options.Freq is zero.
const DefaultFreq = 3 * time.Second

// Source is what every database monitor shares: its identity, its
// settings from monitor.Options and its rescan requests. A monitor embeds
// it to get ID, String and Rescan.
type Source struct {
	id, display string
	// Freq is the scan period (emperor-freq).
	Freq time.Duration
	// Checks are the rules rows must pass.
	Checks Checks
	// MaxRemovals caps the removals of one scan (emperor-max-removals).
	MaxRemovals int
	// Log names the monitor (redacted) on every line.
	Log *slog.Logger
	// RescanC receives one value per pending Rescan request.
	RescanC chan struct{}

	ready     chan<- string
	readySent bool // touched only by the Run goroutine
}

// Settings are what the Emperor's options set for every database monitor;
// each scheme's settings embed them.
type Settings struct {
	// MaxRemovals caps how many vassals one scan may remove; a scan that
	// would remove more removes none (emperor-max-removals; 0: no cap).
	MaxRemovals int
}

var _ monitor.Settings = (*Settings)(nil)

// Options lists the Emperor options that set s.
func (s *Settings) Options() []config.Setting {
	return []config.Setting{
		config.IntSetting("emperor-max-removals", "most vassals one pg:// or mongodb:// scan may remove; a scan wanting more removes none (default 0: no cap)", &s.MaxRemovals),
	}
}

// NewSource fills a Source from the monitor's ID (which may hold a
// password), its redacted display form, the options and the database
// settings.
func NewSource(id, display string, opts monitor.Options, s Settings) *Source {
	freq := opts.Freq
	if freq <= 0 {
		freq = DefaultFreq
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		id: id, display: display, Freq: freq,
		Checks:      Checks{Extensions: slices.Clone(opts.Extensions), Tyrant: opts.Tyrant},
		MaxRemovals: s.MaxRemovals,
		Log:         logger.With("monitor", display),
		RescanC:     make(chan struct{}, 1),
		ready:       opts.Ready,
	}
}

// ID is the URI as given.
func (s *Source) ID() string { return s.id }

// String is the URI with any password hidden.
func (s *Source) String() string { return s.display }

// Rescan asks for an immediate scan that also applies removals held back
// by emperor-max-removals. It never blocks.
func (s *Source) Rescan() {
	select {
	case s.RescanC <- struct{}{}:
	default:
	}
}

// Scanned reports the end of the first scan attempt, successful or not, to
// the Emperor (once): a database that is down at start must not hold back
// the Emperor's readiness. Only Run's goroutine may call it.
func (s *Source) Scanned() {
	if !s.readySent && s.ready != nil {
		s.ready <- s.id
	}
	s.readySent = true
}

// NewSnapshot returns an empty snapshot with the source's checks and cap.
func (s *Source) NewSnapshot() *Snapshot { return NewSnapshot(s.id, s.Checks, s.MaxRemovals) }
