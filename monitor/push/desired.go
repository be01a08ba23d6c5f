package push

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/journal"
)

const (
	// minRetry and maxRetry bound the backoff between attempts to write a
	// journal that failed (ENOSPC, EIO).
	minRetry = 100 * time.Millisecond
	maxRetry = 5 * time.Second
)

// Desired is the set of vassals a push monitor has asked for, as the
// messages left it. It keeps the journal and emits the events, in that
// order: a change is emitted, and the callbacks registered with Then run,
// only once the journal holds it, so the Emperor never runs what a restart
// would not bring back. While a write fails the changes wait, in order, and
// Retry fires to try again; Blocked tells the monitor to take no new
// message meanwhile.
//
// Everything but status belongs to the monitor's Run goroutine.
type Desired struct {
	id      string
	journal *journal.Journal // nil: no emperor-state-dir, nothing survives a restart
	log     *slog.Logger
	status  *Status

	// entries is what the events emitted so far asked for; with a
	// journal, it is what the journal holds.
	entries map[string]journal.Entry
	// replay is what the journal held at start, until Start replays it.
	replay []journal.Entry
	// pending are the changes accepted and not yet in the journal, in
	// order; nothing of them was emitted or acknowledged.
	pending []change
	// rewrite: the journal must be rewritten even with nothing pending
	// (it was damaged, or is a version 1 file).
	rewrite bool
	// failing is the error of the last write while writes fail.
	failing error
	errors  uint64 // failed writes so far
	retry   *time.Timer
	retryC  <-chan time.Time // retry.C while a retry is due, else nil
	backoff time.Duration
	// last is the last Version.ModTime handed out; each touch gets a
	// strictly larger one, so every pushed touch reloads, even two within
	// one second (uWSGI ignores the second, bug B32).
	last int64
}

// change is one accepted change and what waits for it.
type change struct {
	op     monitor.Op
	entry  journal.Entry
	reason string
	quiet  bool     // journal it, emit nothing (a replayed entry dropped)
	then   []func() // acknowledgements, run once it is durable
}

// NewDesired returns the desired state of the monitor id (display is its
// redacted form), journaled in stateDir when it is not empty, and reads
// the journal. A journal that cannot be read at all is an error: starting
// empty would overwrite it. A damaged one costs only what is unreadable; it
// is kept aside and logged. status, when not nil, is kept up to date.
func NewDesired(id, display, stateDir string, status *Status, log *slog.Logger) (*Desired, error) {
	d := &Desired{id: id, entries: map[string]journal.Entry{}, log: log, status: status, backoff: minRetry}
	if stateDir == "" {
		log.Warn("no emperor-state-dir: vassals pushed to this monitor will not survive an Emperor restart")
		return d, nil
	}
	j, err := journal.Open(stateDir, id, display)
	if err != nil {
		return nil, err
	}
	rec, err := j.Load()
	if err != nil {
		return nil, fmt.Errorf("cannot replay the push journal, and will not start over it: %w", err)
	}
	d.journal, d.replay = j, rec.Entries
	d.rewrite = rec.Damage != nil || rec.Legacy
	if rec.Damage != nil {
		log.Error("push journal damaged: replaying what could be read; the damaged file is kept aside",
			"file", j.Path(), "vassals", len(rec.Entries), "kept_aside", rec.Aside, "aside_err", rec.AsideErr, "err", rec.Damage)
	}
	status.update(func(s *Status) {
		s.file = j.Path()
		s.keptAside = rec.Aside
	})
	return d, nil
}

// Start replays the journal, then sends the monitor's ID on ready (when not
// nil): a push monitor is ready once what it asked for before a restart is
// back, whether or not its source is reachable. It reports false when ctx
// ended first.
func (d *Desired) Start(ctx context.Context, out chan<- monitor.Event, ready chan<- string) bool {
	d.replayJournal(ctx, out)
	if ready == nil {
		return ctx.Err() == nil
	}
	select {
	case ready <- d.id:
		return true
	case <-ctx.Done():
		return false
	}
}

// replayJournal emits a Touch for each journaled entry whose config still
// exists; the others are dropped from the journal.
func (d *Desired) replayJournal(ctx context.Context, out chan<- monitor.Event) {
	if d.journal == nil {
		return
	}
	for _, e := range d.replay {
		if e.Path != "" {
			if _, err := FileOwner(e.Path); err != nil {
				d.log.Warn("journaled vassal's config is gone; not replayed", "vassal", e.Name, "err", err)
				d.pending = append(d.pending, change{op: monitor.Destroy, entry: e, reason: "config gone", quiet: true})
				d.entries[e.Name] = e
				continue
			}
		}
		d.entries[e.Name] = e
		d.emit(ctx, out, monitor.Touch, e, "journal replay")
	}
	d.log.Info("push journal replayed", "vassals", len(d.replay), "file", d.journal.Path())
	d.replay = nil
	d.Flush(ctx, out)
}

// Has reports whether name is wanted, counting the changes not yet
// journaled.
func (d *Desired) Has(name string) bool {
	_, ok := d.want(name)
	return ok
}

func (d *Desired) want(name string) (journal.Entry, bool) {
	for i := len(d.pending) - 1; i >= 0; i-- {
		if c := d.pending[i]; c.entry.Name == name {
			return c.entry, c.op == monitor.Touch
		}
	}
	e, ok := d.entries[name]
	return e, ok
}

// Touch records e as wanted and, once the journal holds it, emits a Touch:
// a new vassal, or a reload of a known one. e.Owner is the owner the
// message gave, if any: a file entry without one runs as its file's owner
// at the time of each event.
func (d *Desired) Touch(ctx context.Context, out chan<- monitor.Event, e journal.Entry, reason string) {
	d.pending = append(d.pending, change{op: monitor.Touch, entry: e, reason: reason})
	d.Flush(ctx, out)
}

// Destroy forgets name and, once the journal holds that, emits a Destroy.
// An unknown name only logs.
func (d *Desired) Destroy(ctx context.Context, out chan<- monitor.Event, name, reason string) {
	e, ok := d.want(name)
	if !ok {
		d.log.Info("destroy of a vassal this monitor does not run; ignored", "vassal", name, "reason", reason)
		return
	}
	d.pending = append(d.pending, change{op: monitor.Destroy, entry: e, reason: reason})
	d.Flush(ctx, out)
}

// Then runs fn once every change accepted so far is journaled and emitted:
// at once when none waits. A monitor acknowledges a message with it.
func (d *Desired) Then(fn func()) {
	if len(d.pending) == 0 {
		fn()
		return
	}
	last := &d.pending[len(d.pending)-1]
	last.then = append(last.then, fn)
}

// Blocked reports whether changes wait for the journal: the monitor should
// take no new message until they are written.
func (d *Desired) Blocked() bool { return len(d.pending) > 0 }

// Retry fires when a failed journal write is due to be tried again: the
// monitor then calls Flush. It is nil when no retry is due.
func (d *Desired) Retry() <-chan time.Time { return d.retryC }

// Flush writes the pending changes to the journal and, once they are
// there, emits them in order and runs their Then callbacks. A failed write
// keeps them pending, is logged once (until a write succeeds again) and
// arms Retry with a backoff.
func (d *Desired) Flush(ctx context.Context, out chan<- monitor.Event) {
	d.retryC = nil
	if len(d.pending) == 0 && !d.rewrite {
		return
	}
	if d.journal != nil {
		changes := make([]journal.Change, len(d.pending))
		for i, c := range d.pending {
			changes[i] = journal.Change{Op: c.op, Entry: c.entry}
		}
		if err := d.journal.Apply(changes); err != nil {
			d.failed(err)
			return
		}
	}
	done := d.pending
	d.pending, d.rewrite = nil, false
	recovered := d.failing != nil
	d.failing, d.backoff = nil, minRetry
	d.report()
	if recovered {
		d.log.Info("push journal written again; the held changes are applied",
			"file", d.journal.Path(), "changes", len(done), "failed_writes", d.errors)
	}
	for _, c := range done {
		if c.op == monitor.Touch {
			d.entries[c.entry.Name] = c.entry
		} else {
			delete(d.entries, c.entry.Name)
		}
		if !c.quiet {
			d.emit(ctx, out, c.op, c.entry, c.reason)
		}
		for _, fn := range c.then {
			fn()
		}
	}
}

// failed records a failed write and arms the retry. The status is updated
// before the line is logged, so whoever reads the line reads the figures
// that go with it.
func (d *Desired) failed(err error) {
	first := d.failing == nil
	d.errors++
	d.failing = err
	if d.retry == nil {
		d.retry = time.NewTimer(d.backoff)
	} else {
		d.retry.Reset(d.backoff)
	}
	d.retryC = d.retry.C
	retryIn := d.backoff
	d.backoff = min(2*d.backoff, maxRetry)
	d.report()
	if first {
		d.log.Error("cannot write the push journal: the changes are held, neither applied nor acknowledged, and the write is retried",
			"file", d.journal.Path(), "pending", len(d.pending), "err", err)
	} else {
		d.log.Debug("push journal write failed again", "file", d.journal.Path(), "pending", len(d.pending), "retry_in", retryIn, "err", err)
	}
}

// Close stops the retry timer and closes the journal. Changes still
// pending were never applied nor acknowledged; they are logged as dropped.
func (d *Desired) Close() {
	if d.retry != nil {
		d.retry.Stop()
	}
	d.retryC = nil
	if n := len(d.pending); n > 0 {
		d.log.Warn("push changes never reached the journal; dropped, neither applied nor acknowledged", "changes", n, "err", d.failing)
	}
	if d.journal != nil {
		if err := d.journal.Close(); err != nil {
			d.log.Warn("closing the push journal", "err", err)
		}
	}
}

// report copies the journal's figures into status.
func (d *Desired) report() {
	pending, errs, failing := len(d.pending), d.errors, d.failing
	d.status.update(func(s *Status) {
		s.pending, s.errors = pending, errs
		s.lastErr = ""
		if failing != nil {
			s.lastErr = failing.Error()
		}
	})
}

func (d *Desired) emit(ctx context.Context, out chan<- monitor.Event, op monitor.Op, e journal.Entry, reason string) {
	now := time.Now().UnixNano()
	if now <= d.last {
		now = d.last + 1
	}
	d.last = now
	ev := monitor.Event{
		Op:      op,
		Key:     monitor.Key{Monitor: d.id, Name: e.Name},
		Path:    e.Path,
		Config:  e.Config,
		Owner:   e.Owner,
		Version: monitor.Version{ModTime: now},
		Reason:  reason,
	}
	if e.Config != nil {
		ev.Version.Hash = hash(e.Config)
	}
	if ev.Owner == nil && e.Path != "" && op == monitor.Touch {
		ev.Owner, _ = FileOwner(e.Path) // nil if it just vanished: tyrant mode refuses
	}
	d.log.Info("push "+op.String(), "vassal", e.Name, "source", e.Source, "reason", reason)
	select {
	case out <- ev:
	case <-ctx.Done():
	}
}
