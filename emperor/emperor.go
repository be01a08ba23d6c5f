// Package emperor is the supervisor core: one goroutine owns the vassal
// table and makes the process table match what the monitors say, through an
// explicit state machine (state.go). Monitors, the spawner thread, the fd
// poller, timers and signals talk to it over channels; nothing in the loop
// blocks.
package emperor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/logburst"
	"github.com/emperor-dev/emperor/monitor"
)

// Emperor governs vassals. Create it with New and call Run once.
type Emperor struct {
	opts Options
	log  *slog.Logger

	// Loop-owned state.
	vassals      map[monitor.Key]*vassal
	fds          map[uint64]fdRef
	nextTok      uint64
	monitorNames map[string]string
	pending      []spawnRequest // spawn requests not yet taken by the spawner
	admission    []ticket       // Waiting/Slot: spawns waiting for a start slot (pipeline.go)
	starting     int            // vassals holding a start slot
	throttled    []ticket       // Waiting/Throttle: spawns waiting for the throttle
	thr          throttle       // the spawn throttle (throttle.go)
	thrTimer     *time.Timer    // opens the next throttle wave
	thrAt        time.Time      // when thrTimer fires
	admitDue     bool           // a slot freed: admit after this event
	ragnarok     bool
	buried       bool // the mercy expired and the killed vassals had their chance to be reaped
	live         int  // vassals with a process (uWSGI's "governing N vassals")
	// children are the processes the reaper waits for, by pid; checkPids
	// those tracked during the current event (reaper_linux.go).
	children  map[int]child
	checkPids []int
	// budget is the fd limit (read-only once Run starts spawning); fdw the
	// vassals waiting for an fd (fdbudget.go).
	budget fdBudget
	fdw    fdWaits

	// handoff is the loop's end of the channel the spawner hands each new
	// vassal's fds over (spawntable_linux.go); nil if it shares the table.
	handoff *handoff

	// release gives a burst's memory back once the spawn pipeline is
	// quiet (memory.go); nil unless Options.ReleaseMemory.
	release      *time.Timer
	releaseStage atomic.Int32 // releases since the pipeline was last busy
	releasing    sync.Mutex   // held by the release under way

	// systemd notify state.
	notify        *notifier
	counters      Counters
	readySent     bool
	statusPending bool
	statusSent    int
	cwd           string
	baseEnv       []string

	// poll registers fds with the poller (fds.go); wrapPoll, set only by
	// tests (export_test.go), wraps it to inject the kernel's refusals.
	poll     fdRegistry
	wrapPoll func(fdRegistry) fdRegistry

	// Channels into the loop.
	events    chan monitor.Event
	polled    chan []uint64
	spawned   chan spawnResult
	ticks     chan tick        // Emperor-wide timers (timers.go)
	timers    chan vassalTimer // per-vassal timers (timers.go)
	sigchld   chan os.Signal   // SIGCHLD: a child exited (reaper_linux.go)
	rereads   chan configRead  // tyrant-mode configs read again (tyrantfile.go)
	queries   chan statsQuery
	commands  chan command
	hookDone  chan hookResult // exec-as-emperor outcomes (hooks.go)
	done      chan struct{}   // closed when the loop exits
	cgroups   sync.WaitGroup  // cgroups being emptied and removed (isolation.go)
	stopHooks sync.WaitGroup  // vassals-stop-hook runs under way (hooks.go)
	// statsBody and metricsBody render the answers of the stats and
	// metrics servers, shared among clients asking together (render.go).
	statsBody, metricsBody *renderer
	statsSize              atomic.Int64 // the last stats answer's size, to size the next
	statsCount             atomic.Int64 // vassals in the last snapshot, to size the next
}

// New checks the options and prepares an Emperor.
func New(opts Options) (*Emperor, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("emperor: getwd: %w", err)
	}
	e := &Emperor{
		opts:         opts,
		log:          burstLimited(opts.Logger),
		vassals:      map[monitor.Key]*vassal{},
		fds:          map[uint64]fdRef{},
		monitorNames: map[string]string{},
		cwd:          cwd,
		baseEnv:      vassalEnv(opts.Env),
		events:       make(chan monitor.Event, 1024),
		polled:       make(chan []uint64, 16),
		spawned:      make(chan spawnResult, 64),
		ticks:        make(chan tick, 16),
		timers:       make(chan vassalTimer, 256),
		sigchld:      make(chan os.Signal, 1),
		children:     map[int]child{},
		rereads:      make(chan configRead, 16),
		queries:      make(chan statsQuery),
		commands:     make(chan command),
		hookDone:     make(chan hookResult, 64),
		done:         make(chan struct{}),
		counters:     newCounters(),
	}
	for _, m := range opts.Monitors {
		e.monitorNames[m.ID()] = m.String()
	}
	e.statsBody, e.metricsBody = newRenderer(e.renderStats), newRenderer(e.renderMetrics)
	return e, nil
}

// Run governs vassals until ctx is cancelled or a stop signal arrives, then
// runs Ragnarok: every vassal is stopped in parallel, those left after
// ReloadMercy are SIGKILLed, and Run returns nil once none is left.
func (e *Emperor) Run(ctx context.Context) error {
	if err := closeOnExecFrom(3); err != nil {
		return fmt.Errorf("emperor: close-on-exec: %w", err)
	}
	poll, err := newPoller()
	if err != nil {
		return fmt.Errorf("emperor: %w", err)
	}
	e.poll = poll
	if e.wrapPoll != nil {
		e.poll = e.wrapPoll(poll)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		poll.close()
		return fmt.Errorf("emperor: %w", err)
	}
	defer devnull.Close()
	signal.Notify(e.sigchld, unix.SIGCHLD) // exits (reaper_linux.go)
	defer signal.Stop(e.sigchld)

	var wg sync.WaitGroup
	bg, cancelBG := context.WithCancel(context.Background())
	defer func() {
		cancelBG()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := poll.run(bg, e.polled); err != nil {
			e.log.Error("fd poller failed", "err", err)
		}
	}()
	var iso isolator
	if e.opts.Cgroup {
		if err := e.startCgroups(&iso); err != nil { // isolation.go
			return err
		}
		defer e.stopGuardian(&iso)
	}
	defer e.startRelease()()
	reqs := make(chan spawnRequest)
	ready := make(chan spawnerReady, 1)
	go spawner(reqs, e.spawned, devnull, &e.opts, e.baseEnv, &iso, &e.budget, ready)
	defer close(reqs)
	sr := <-ready // before anything else opens fds: the spawner's table copies them
	for _, fd := range sr.closeInProcess {
		unix.Close(fd)
	}
	e.handoff = sr.h
	defer e.handoff.close()
	if sr.err != nil {
		e.log.Info("the spawner shares the Emperor's fd table: each spawn costs a step per open fd", "err", sr.err)
	}

	goServe := func(serve func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve()
		}()
	}
	for _, srv := range []struct {
		what, addr string
		tcp        bool
		handle     func(context.Context, net.Conn)
	}{
		{"emperor-stats", e.opts.Stats, true, e.answerStats},
		{"emperor-metrics", e.opts.Metrics, true, e.answerMetrics},
		{"emperor-command-socket", e.opts.CommandSocket, false, e.answerCommand},
	} {
		if srv.addr == "" {
			continue
		}
		l, bound := e.opts.Listeners[srv.what]
		if !bound {
			var err error
			if l, err = listen(srv.addr, srv.tcp); err != nil {
				return fmt.Errorf("%s %s: %w", srv.what, srv.addr, err)
			}
		}
		goServe(func() { e.serve(bg, srv.what, l, srv.handle) })
	}

	monCtx, cancelMonitors := context.WithCancel(ctx)
	defer cancelMonitors()
	for _, m := range e.opts.Monitors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.runMonitor(monCtx, m)
		}()
	}

	e.notify = newNotifier(bg, e.opts.NotifySocket, e.log.Warn)
	if e.opts.Ready == nil {
		e.initialScanDone()
	}
	if e.opts.WatchdogEvery > 0 {
		e.afterTick(e.opts.WatchdogEvery, watchdogTick)
	}
	if e.budget, err = readBudget(); err != nil { // fdbudget.go
		e.log.Warn("cannot read the fd limit: spawns are not checked against it", "err", err)
	}
	e.logBudget()
	if e.opts.WaitForCommand && e.opts.CommandSocket == "" {
		e.log.Warn("emperor-wait-for-command needs emperor-command-socket to start anything: ignored, vassals start at once (as in uWSGI)")
	}
	e.log.Info("the Emperor is ruling", "monitors", len(e.opts.Monitors), "binary", e.opts.Binary, "pid", os.Getpid())
	err = e.loop(ctx, reqs, cancelMonitors)
	e.cgroups.Wait()   // every vassal's cgroup is gone before the Emperor is
	e.stopHooks.Wait() // and every stop hook has run
	close(e.done)
	return err
}

// runMonitor runs one monitor, restarting it after an error. An outage of a
// source never removes vassals: the monitor just emits nothing meanwhile.
func (e *Emperor) runMonitor(ctx context.Context, m monitor.Monitor) {
	backoff := time.Second
	for {
		err := m.Run(ctx, e.events)
		if ctx.Err() != nil {
			return
		}
		e.log.Error("monitor failed; vassals keep running", "monitor", m.String(), "err", err, "retry", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, time.Minute)
	}
}

func (e *Emperor) loop(ctx context.Context, reqs chan<- spawnRequest, cancelMonitors context.CancelFunc) error {
	ctxDone := ctx.Done()
	readyLeft := len(e.opts.Monitors)
	for {
		var send chan<- spawnRequest
		var head spawnRequest
		if len(e.pending) > 0 {
			send, head = reqs, e.pending[0]
		}
		select {
		case <-ctxDone:
			ctxDone = nil
			e.startRagnarok("context cancelled", cancelMonitors)
		case sig := <-e.opts.Signals:
			e.signal(sig, cancelMonitors)
		case ev := <-e.events:
			e.monitorEvent(ev)
		case id := <-e.opts.Ready:
			// The monitor sent its scan's events before this: apply the
			// ones still queued, so the count below is the real one.
			e.drainEvents()
			readyLeft--
			e.log.Info("monitor scanned", "monitor", e.monitorNames[id])
			if readyLeft == 0 {
				e.log.Info("initial scan complete", "vassals", len(e.vassals))
				e.initialScanDone()
			}
		case send <- head:
			e.pending = dropFirst(e.pending)
		case res := <-e.spawned:
			e.spawnDone(res)
		case batch := <-e.polled:
			for _, tok := range batch {
				e.fdReady(tok)
			}
		case t := <-e.ticks:
			e.tickFired(t)
		case t := <-e.timers:
			e.timerFired(t)
		case <-e.sigchld:
			e.reapChildren()
		case r := <-e.rereads:
			e.configReread(r)
		case q := <-e.queries:
			q.reply <- e.stats(q.vassals)
		case c := <-e.commands:
			c.reply <- e.command(c.args)
		case r := <-e.hookDone:
			e.hookFinished(r)
		}
		if len(e.checkPids) > 0 {
			e.checkTracked() // reaper_linux.go
		}
		if e.admitDue {
			e.admitDue = false
			e.admit()
		}
		e.statusChanged()
		if e.ragnarok && len(e.vassals) == 0 {
			e.log.Info("the Emperor is buried")
			e.notify.send("STATUS=The Emperor is buried.\n")
			return nil
		}
		if e.buried {
			e.log.Warn("the Emperor is buried; vassals that survived SIGKILL are left to the kernel", "left", len(e.vassals))
			return nil
		}
	}
}

// initialScanDone tells systemd the Emperor is ready: every monitor's first
// scan is applied (uWSGI says READY before it scanned anything, bug B41).
func (e *Emperor) initialScanDone() {
	if e.readySent {
		return
	}
	e.readySent = true
	e.quietSoon()
	e.statusSent = e.live
	e.notify.send("READY=1\n" + statusLine(e.live))
}

// drainEvents applies every monitor event already queued, without waiting.
func (e *Emperor) drainEvents() {
	for {
		select {
		case ev := <-e.events:
			e.monitorEvent(ev)
		default:
			return
		}
	}
}

// burstLimited makes sure no vassal can fill the log: the Emperor's lines go
// through logburst, unless the logger given already does.
func burstLimited(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(*logburst.Handler); ok {
		return l
	}
	return slog.New(logburst.New(l.Handler()))
}
