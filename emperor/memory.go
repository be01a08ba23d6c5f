package emperor

import (
	"time"

	"github.com/emperor-dev/emperor/internal/logburst"
	"github.com/emperor-dev/emperor/internal/memtrim"
)

// releaseAfter is how long the spawn pipeline stays quiet before the
// Emperor gives back the memory a burst left (Options.ReleaseMemory).
const releaseAfter = time.Second

// startRelease makes the timer of Options.ReleaseMemory; stop it when Run
// ends.
func (e *Emperor) startRelease() (stop func()) {
	if !e.opts.ReleaseMemory {
		return func() {}
	}
	e.release = time.AfterFunc(time.Hour, e.releaseMemory)
	e.release.Stop()
	return func() { e.release.Stop() }
}

// quietSoon re-arms the release: the initial scan ended, or a spawn
// answered. A cold start or a flood of configs releases twice: a second
// after its last spawn, and once more when the log's burst limiter has
// surely forgotten the burst's lines (30,000 of them after 10,000 vassals
// started): it sweeps every logburst.Window, forgetting lines at least a
// Window old, so two Windows after the last line none is left. An idle
// Emperor releases nothing.
func (e *Emperor) quietSoon() {
	if e.release != nil {
		e.releaseStage.Store(0)
		e.release.Reset(releaseAfter)
	}
}

// releaseMemory runs on the timer's own goroutine, never on the loop: a
// full collection, the free heap returned to the system, and the pages of
// program text the burst (or start-up) ran dropped (internal/memtrim).
func (e *Emperor) releaseMemory() {
	if !e.releasing.TryLock() {
		return // one is under way (the timer was re-armed meanwhile)
	}
	defer e.releasing.Unlock()
	if e.releaseStage.Add(1) == 1 {
		e.release.Reset(2 * logburst.Window)
	}
	kib, err := memtrim.Release()
	if err != nil {
		e.log.Warn("cannot release start-up memory", "err", err)
		return
	}
	if kib > 0 {
		e.log.Debug("released program pages", "kib", kib)
	}
}
