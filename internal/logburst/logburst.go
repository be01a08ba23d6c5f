// Package logburst keeps any one source from filling the log: a slog
// Handler that lets a line through until it repeats too often, then
// counts its repeats and says how many it held back, once per burst.
//
// Two records are "the same line" when they have the same level, message
// and vassal and monitor attributes: a vassal flooding its control channel
// makes one line per burst, not one per byte, while every other vassal's
// lines go through untouched.
package logburst

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults: Burst lines of one kind per Window pass; past that they are
// counted.
const (
	Burst  = 10
	Window = 10 * time.Second
	// maxKinds is when kinds whose window is over are forgotten before
	// the next walk (their held-back counts said).
	maxKinds = 4096
)

// Handler wraps another slog.Handler. Create it with New; it is safe for
// concurrent use, and handlers derived by WithAttrs and WithGroup share
// its counts.
type Handler struct {
	next  slog.Handler
	st    *state
	bound key // vassal and monitor bound by WithAttrs
}

type key struct {
	level           slog.Level
	msg             string
	vassal, monitor string
}

type kind struct {
	start time.Time // the window's start
	n     int       // lines of this kind in the window, passed or held back
	held  int       // lines held back in the window
	h     slog.Handler
}

type state struct {
	mu       sync.Mutex
	kinds    map[key]kind // by value: one allocation fewer per kind
	peak     int          // the most kinds the map held since it was made
	swept    time.Time    // the last walk of kinds
	sweptLen int          // kinds left by that walk
	walks    int          // walks so far (tests)
	now      func() time.Time
	// sweeping is whether a sweep is scheduled: one is, Window after the
	// first kind is added to an empty table, so that kinds are forgotten
	// (and their held-back counts said) when the log falls silent too.
	sweeping bool
	after    func(time.Duration, func())
}

// New returns a Handler passing at most Burst lines of one kind per Window
// to next.
func New(next slog.Handler) *Handler {
	return &Handler{next: next, st: &state{kinds: map[key]kind{}, now: time.Now, after: afterFunc}}
}

func afterFunc(d time.Duration, f func()) { time.AfterFunc(d, f) }

// Enabled reports whether next handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes r on, or counts it when its kind is past its burst. The
// first line of a kind after a burst carries repeated=N, the lines held
// back; so does a summary line for kinds that fell silent, said when any
// later line passes.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	k := h.bound
	k.level, k.msg = r.Level, r.Message
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "vassal":
			k.vassal = a.Value.String()
		case "monitor":
			k.monitor = a.Value.String()
		}
		return true
	})
	now := h.st.now()
	h.st.mu.Lock()
	flush := h.st.expired(now, k)
	kd, known := h.st.kinds[k]
	held := 0
	pass := true
	switch {
	case !known:
		kd = kind{start: now, n: 1, h: h.next}
		if !h.st.sweeping {
			h.st.sweeping = true
			h.st.after(Window, h.st.sweep)
		}
	case now.Sub(kd.start) >= Window:
		held = kd.held
		kd.start, kd.n, kd.held = now, 1, 0
	case kd.n < Burst:
		kd.n++
	default:
		kd.n++
		kd.held++
		pass = false
	}
	h.st.kinds[k] = kd
	h.st.peak = max(h.st.peak, len(h.st.kinds))
	h.st.mu.Unlock()
	for _, f := range flush {
		f.emit(ctx)
	}
	if !pass {
		return nil
	}
	if held > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", held))
	}
	return h.next.Handle(ctx, r)
}

// summary is a held-back count to say for a kind that fell silent.
type summary struct {
	k    key
	held int
	h    slog.Handler
}

func (s summary) emit(ctx context.Context) {
	r := slog.NewRecord(time.Now(), s.k.level, s.k.msg, 0)
	if s.k.vassal != "" {
		r.AddAttrs(slog.String("vassal", s.k.vassal))
	}
	if s.k.monitor != "" {
		r.AddAttrs(slog.String("monitor", s.k.monitor))
	}
	r.AddAttrs(slog.Int("repeated", s.held), slog.String("burst", "ended"))
	_ = s.h.Handle(ctx, r)
}

// expired forgets kinds whose window is over, except skip, and returns the
// summaries of those that held lines back. It walks the map once per
// Window, or when it holds maxKinds and twice what the last walk left, so
// a busy log costs no walk per line: 10,000 vassals starting at once make
// 30,000 kinds within one window, and a walk per line once the map was
// full took three quarters of the Emperor's CPU and doubled its cold
// start.
func (s *state) expired(now time.Time, skip key) []summary {
	if now.Sub(s.swept) < Window && len(s.kinds) < max(maxKinds, 2*s.sweptLen) {
		return nil
	}
	return s.walk(now, &skip)
}

// walk forgets kinds whose window is over, except *skip when skip is not
// nil, and returns the summaries of those that held lines back.
func (s *state) walk(now time.Time, skip *key) []summary {
	s.swept = now
	s.walks++
	defer func() { s.sweptLen = len(s.kinds) }()
	var out []summary
	for k, kd := range s.kinds {
		if (skip != nil && k == *skip) || now.Sub(kd.start) < Window {
			continue
		}
		if kd.held > 0 {
			out = append(out, summary{k: k, held: kd.held, h: kd.h})
		}
		delete(s.kinds, k)
	}
	return out
}

// sweep forgets the kinds whose window is over and says the held-back
// counts of those that fell silent, so that a quiet log holds nothing: ten
// thousand vassals starting leave 30,000 kinds, 8 MiB, that a later line
// might never come to clear. It runs Window after the first kind entered an
// empty table and again while kinds remain. A map does not shrink when its
// entries are deleted, so one left with under a quarter of its peak is
// copied into a new one.
func (s *state) sweep() {
	s.mu.Lock()
	flush := s.walk(s.now(), nil)
	if len(s.kinds) < s.peak/4 {
		kinds := make(map[key]kind, len(s.kinds))
		for k, kd := range s.kinds {
			kinds[k] = kd
		}
		s.kinds, s.peak = kinds, len(kinds)
	}
	s.sweeping = len(s.kinds) > 0
	if s.sweeping {
		s.after(Window, s.sweep)
	}
	s.mu.Unlock()
	for _, f := range flush {
		f.emit(context.Background())
	}
}

// WithAttrs returns a Handler whose lines carry attrs; a vassal or
// monitor among them names the lines' kind.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	for _, a := range attrs {
		switch a.Key {
		case "vassal":
			c.bound.vassal = a.Value.String()
		case "monitor":
			c.bound.monitor = a.Value.String()
		}
	}
	return &c
}

// WithGroup returns a Handler whose later attributes are in group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
