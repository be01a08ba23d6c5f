package push

import (
	"context"
	"log/slog"
	"time"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/journal"
)

// Desired is the set of vassals a push monitor has asked for, as the
// messages left it. It emits the events and keeps the journal in step. It
// belongs to the monitor's Run goroutine.
type Desired struct {
	id      string
	entries map[string]journal.Entry
	journal *journal.Journal // nil: no emperor-state-dir, nothing survives a restart
	log     *slog.Logger
	// last is the last Version.ModTime handed out; each touch gets a
	// strictly larger one, so every pushed touch reloads, even two within
	// one second (uWSGI ignores the second, bug B32).
	last int64
}

// NewDesired returns the desired state of the monitor id (display is its
// redacted form), journaled in stateDir when it is not empty.
func NewDesired(id, display, stateDir string, log *slog.Logger) (*Desired, error) {
	d := &Desired{id: id, entries: map[string]journal.Entry{}, log: log}
	if stateDir == "" {
		log.Warn("no emperor-state-dir: vassals pushed to this monitor will not survive an Emperor restart")
		return d, nil
	}
	j, err := journal.Open(stateDir, id, display)
	if err != nil {
		return nil, err
	}
	d.journal = j
	return d, nil
}

// Has reports whether name is wanted.
func (d *Desired) Has(name string) bool {
	_, ok := d.entries[name]
	return ok
}

// Start replays the journal, then sends the monitor's ID on ready (when not
// nil): a push monitor is ready once what it asked for before a restart is
// back, whether or not its source is reachable. It reports false when ctx
// ended first.
func (d *Desired) Start(ctx context.Context, out chan<- monitor.Event, ready chan<- string) bool {
	d.replay(ctx, out)
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

// replay loads the journal and emits a Touch for each entry whose config
// still exists. A journal that cannot be read is logged and ignored (the
// next change rewrites it).
func (d *Desired) replay(ctx context.Context, out chan<- monitor.Event) {
	if d.journal == nil {
		return
	}
	entries, err := d.journal.Load()
	if err != nil {
		d.log.Error("cannot replay the push journal; starting empty", "err", err)
		return
	}
	dropped := false
	for _, e := range entries {
		if e.Path != "" {
			if _, err := FileOwner(e.Path); err != nil {
				d.log.Warn("journaled vassal's config is gone; not replayed", "vassal", e.Name, "err", err)
				dropped = true
				continue
			}
		}
		d.entries[e.Name] = e
		d.emit(ctx, out, monitor.Touch, e, "journal replay")
	}
	d.log.Info("push journal replayed", "vassals", len(d.entries), "file", d.journal.Path())
	if dropped {
		d.save()
	}
}

// Touch records e as wanted and emits a Touch: a new vassal, or a reload
// of a known one. e.Owner is the owner the message gave, if any: a file
// entry without one runs as its file's owner at the time of each event.
func (d *Desired) Touch(ctx context.Context, out chan<- monitor.Event, e journal.Entry, reason string) {
	d.entries[e.Name] = e
	d.save()
	d.emit(ctx, out, monitor.Touch, e, reason)
}

// Destroy forgets name and emits a Destroy. An unknown name only logs.
func (d *Desired) Destroy(ctx context.Context, out chan<- monitor.Event, name, reason string) {
	e, ok := d.entries[name]
	if !ok {
		d.log.Info("destroy of a vassal this monitor does not run; ignored", "vassal", name, "reason", reason)
		return
	}
	delete(d.entries, name)
	d.save()
	d.emit(ctx, out, monitor.Destroy, e, reason)
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

func (d *Desired) save() {
	if d.journal == nil {
		return
	}
	list := make([]journal.Entry, 0, len(d.entries))
	for _, e := range d.entries {
		list = append(list, e)
	}
	if err := d.journal.Save(list); err != nil {
		// The vassals run; only a restart would lose them.
		d.log.Error("cannot write the push journal", "err", err)
	}
}
