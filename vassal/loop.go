package vassal

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/protocol"
)

// runner is one run of the vassal. Fields below the mark are owned by the
// loop goroutine.
type runner struct {
	o       Options
	log     *slog.Logger
	getenv  func(string) (string, bool)
	em      *emperorClient // nil when standalone
	events  chan event
	done    chan struct{} // closed when the loop has returned
	spawns  chan spawnRequest
	waiters sync.WaitGroup
	// orphans reaps re-parented processes when the vassal is PID 1; nil
	// otherwise.
	orphans *orphanReaper
	// leaders is a snapshot of every running worker's pid, for probes.
	leaders atomic.Pointer[[]int]

	// Owned by the loop.
	sockets     map[socketKey]*listener
	shared      map[string]*listener // shared-socket by address, bound once
	gens        []*generation        // oldest first
	nextGen     int
	loyal       bool
	loading     bool // a config reload is being read
	reloadAgain bool // a reload was asked for while loading
	stopping    bool
	exitErr     error
	settings    Settings // of the newest generation
	pidfiles    []string // written by the vassal, removed with vacuum
	// failures counts workers that died (or could not start) in a row
	// before the vassal was ever ready; cause is the latest reason.
	failures int
	cause    string
	// heartbeat is the period of the running heartbeat timer (0: none);
	// heartbeatSeq invalidates older timers.
	heartbeat    time.Duration
	heartbeatSeq int
	notify       *notifyBridge // nil when it could not be created
	// Load watching (idle, vassal-sos): sampling says the sampler runs.
	sampling     bool
	lastActive   time.Time // last sample with an open connection
	idled        bool      // idle fired: workers stopped, waiting for the Emperor
	warnedIdle   bool
	queuedSince  time.Time // accept queue non-empty since, or zero
	lastSOS      time.Time
	lastBacklog  time.Time
	sampleCancel context.CancelFunc
	// Recycling (supervise.go).
	supervising bool
	recycling   bool // a replacement worker is starting
	lastRSS     time.Time
	// Master FIFO and stats.
	name         string
	started      time.Time
	paused       bool
	brutal       bool // stop workers with SIGKILL
	brutalReload bool // the reload being read kills the old workers
	activeFifo   int
	fifoCount    int
	daemons      []*daemon
	ambientCaps  []uintptr // cap, kept across the uid drop, for workers
}

// post delivers an event to the loop, or drops it once the loop is gone.
func (r *runner) post(ev event) {
	select {
	case r.events <- ev:
	case <-r.done:
	}
}

// after posts ev to the loop once d has passed.
func (r *runner) after(d time.Duration, ev event) *time.Timer {
	return time.AfterFunc(d, func() { r.post(ev) })
}

// send writes a control byte to the Emperor, if there is one. A failure is
// logged: a broken channel also shows up as emperorLost.
func (r *runner) send(b protocol.Byte) {
	if r.em == nil {
		return
	}
	if err := r.em.send(b); err != nil {
		r.log.Error("cannot notify the emperor", "byte", int(b), "err", err)
		return
	}
	r.log.Debug("sent to emperor", "byte", int(b), "meaning", b.FromVassal())
}

// loop is the vassal's single owner goroutine.
func (r *runner) loop(ctx context.Context, settings Settings, socks []*listener) error {
	defer func() {
		close(r.done)
		r.waiters.Wait()
	}()
	r.startGeneration(settings, socks)
	if settings.ReadyTimeout > 0 {
		t := r.after(settings.ReadyTimeout, readyTimedOut{settings.ReadyTimeout})
		defer t.Stop()
	}
	ctxDone := ctx.Done()
	defer func() {
		if r.sampleCancel != nil {
			r.sampleCancel()
		}
	}()
	r.startDaemons(settings)
	for !r.stopping || len(r.gens) > 0 || r.daemonsRunning() {
		select {
		case <-ctxDone:
			ctxDone = nil
			r.stop("signal", nil)
		case sig := <-r.o.Signals:
			r.signaled(sig)
		case ev := <-r.events:
			r.handle(ev)
		}
	}
	r.log.Info("vassal stopped")
	return r.exitErr
}

func (r *runner) handle(ev event) {
	switch ev := ev.(type) {
	case emperorByte:
		r.emperorSaid(ev.b)
	case emperorLost:
		r.stop("emperor channel closed", fmt.Errorf("emperor channel closed: %w", ev.err))
	case configLoaded:
		r.configLoaded(ev)
	case workerExited:
		r.workerExited(ev)
	case respawnDue:
		r.respawnDue(ev)
	case mercyExpired:
		r.mercyExpired(ev)
	case probed:
		r.probed(ev)
	case readyTimedOut:
		if !r.loyal && !r.stopping {
			err := fmt.Errorf("workers not ready after ready-timeout (%v)", ev.after)
			if r.cause != "" {
				err = fmt.Errorf("%w; last worker failure: %s", err, r.cause)
			}
			r.stop("never ready", err)
		}
	case heartbeatDue:
		r.heartbeatDue(ev)
	case notified:
		r.notified(ev)
	case netSample:
		r.watchLoad(ev)
	case superviseTick:
		r.supervise()
	case retireMercy:
		r.retireMercyExpired(ev)
	case daemonDue:
		r.daemonDue(ev)
	case daemonExited:
		r.daemonExited(ev)
	case daemonMercy:
		r.daemonMercyExpired()
	case fifoCommand:
		r.fifoSaid(ev)
	case statsRequest:
		ev.reply <- r.statsDoc()
	}
}

// emperorSaid handles a control byte.
func (r *runner) emperorSaid(b protocol.Byte) {
	r.log.Debug("emperor says", "byte", int(b), "meaning", b.FromEmperor())
	switch b {
	case protocol.Stop, protocol.GracefulStop:
		r.stop("emperor: "+b.FromEmperor(), nil)
	case protocol.Reload:
		switch {
		case r.stopping:
		case r.loading:
			r.reloadAgain = true
		default:
			r.startLoad()
		}
	}
}

// signaled handles a signal the caller passed on.
func (r *runner) signaled(sig os.Signal) {
	switch {
	case sig == syscall.SIGHUP, sig == syscall.SIGTERM && !r.settings.DieOnTerm:
		r.log.Info("graceful reload", "signal", sig.String())
		r.emperorSaid(protocol.Reload)
	default:
		r.stop("signal "+sig.String(), nil)
	}
}

// stop stops every generation; the loop returns once all are gone, with
// err as Run's result.
func (r *runner) stop(reason string, err error) {
	if r.stopping {
		return
	}
	r.stopping, r.exitErr = true, err
	r.log.Info("stopping", "reason", reason)
	for _, g := range r.gens {
		r.stopGeneration(g, reason)
	}
	r.stopDaemons(r.settings.Mercy)
}

// notifyPath is the NOTIFY_SOCKET workers get, or "".
func (r *runner) notifyPath() string {
	if r.notify == nil {
		return ""
	}
	return r.notify.path
}
