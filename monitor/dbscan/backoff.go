package dbscan

import (
	"context"
	"log/slog"
	"time"

	"github.com/emperor-dev/emperor/monitor"
)

// Backoff is the delay before the next reconnect attempt: it doubles from
// Min up to Max after each failure and returns to Min after a success.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the delay to wait now and doubles the following one.
func (b *Backoff) Next() time.Duration {
	if b.cur < b.Min {
		b.cur = b.Min
	}
	d := b.cur
	b.cur = min(2*b.cur, b.Max)
	return d
}

// Reset starts the next series of failures at Min again.
func (b *Backoff) Reset() { b.cur = 0 }

// Report logs what Apply refused or held back. log already names the
// monitor.
func Report(log *slog.Logger, res Result, maxRemovals int) {
	for _, b := range res.NewBad {
		attrs := []any{"row", b.Where, "err", b.Err}
		if b.Name != "" {
			attrs = append(attrs, "vassal", b.Name)
		}
		if b.Kept {
			log.Error("bad row refused; its vassal keeps its last good config", attrs...)
		} else {
			log.Error("bad row refused", attrs...)
		}
	}
	if res.Held > 0 {
		log.Warn("scan would remove more vassals than emperor-max-removals allows; removing none (an explicit rescan, SIGWINCH or `emperor rescan`, applies them)",
			"vanished", res.Held, "max", maxRemovals)
	}
}

// Sleep waits d, or less when a rescan is requested on rescan (forced is
// then true); ok is false when ctx was cancelled. It is the monitors' only
// way to wait: a timer, never time.Sleep.
func Sleep(ctx context.Context, d time.Duration, rescan <-chan struct{}) (forced, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, false
	case <-rescan:
		return true, true
	case <-t.C:
		return false, true
	}
}

// Emit sends events in order; it gives up when ctx is cancelled.
func Emit(ctx context.Context, out chan<- monitor.Event, evs []monitor.Event) error {
	for _, ev := range evs {
		select {
		case out <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
