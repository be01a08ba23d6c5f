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
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/protocol"
	"github.com/emperor-dev/emperor/tyrant"
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
	pending      []spawnRequest    // spawn requests not yet taken by the spawner
	admission    []admissionTicket // spawns waiting for a start slot
	starting     int               // vassals holding a start slot
	throttled    []admissionTicket // spawns waiting for the throttle
	thr          throttle          // the spawn throttle (throttle.go)
	thrTimer     *time.Timer       // opens the next throttle wave
	thrAt        time.Time         // when thrTimer fires
	admitDue     bool              // a slot freed: admit after this event
	ragnarok     bool
	buried       bool // the mercy expired and the killed vassals had their chance to be reaped
	live         int  // vassals with a process (uWSGI's "governing N vassals")

	// systemd notify state.
	notify        *notifier
	counters      Counters
	readySent     bool
	statusPending bool
	statusSent    int
	cwd           string
	baseEnv       []string

	poll *poller

	// Channels into the loop.
	events   chan monitor.Event
	polled   chan []uint64
	spawned  chan spawnResult
	timers   chan timerFired
	queries  chan chan *Stats
	commands chan command
	hookDone chan hookResult // exec-as-emperor outcomes (hooks.go)
	done     chan struct{}   // closed when the loop exits
	cgroups  sync.WaitGroup  // cgroups being emptied and removed (isolation.go)
}

type fdKind uint8

const (
	ctlFd fdKind = iota
	pidFd
)

// fdRef says whose fd a poller token is. It is stale when the vassal left
// the table or runs another process.
type fdRef struct {
	v    *vassal
	p    *process
	kind fdKind
}

type timerKind uint8

const (
	spawnTimer timerKind = iota
	killTimer
	heartbeatTimer
	statusTimer
	startTimer
	watchdogTimer
	mercyTimer
	buryTimer
	throttleTimer
)

// timerFired is a timer's event. It carries the generation it was set for;
// the loop drops it when the vassal has moved on.
type timerFired struct {
	key  monitor.Key
	gen  uint64
	kind timerKind
	proc *process // heartbeat timers: the process they watch
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
		log:          opts.Logger,
		vassals:      map[monitor.Key]*vassal{},
		fds:          map[uint64]fdRef{},
		monitorNames: map[string]string{},
		cwd:          cwd,
		baseEnv:      vassalEnv(opts.Env),
		events:       make(chan monitor.Event, 1024),
		polled:       make(chan []uint64, 16),
		spawned:      make(chan spawnResult, 64),
		timers:       make(chan timerFired, 256),
		queries:      make(chan chan *Stats),
		commands:     make(chan command),
		hookDone:     make(chan hookResult, 64),
		done:         make(chan struct{}),
		counters:     newCounters(),
	}
	for _, m := range opts.Monitors {
		e.monitorNames[m.ID()] = m.String()
	}
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
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		poll.close()
		return fmt.Errorf("emperor: %w", err)
	}
	defer devnull.Close()

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
	reqs := make(chan spawnRequest)
	go spawner(reqs, e.spawned, devnull, &e.opts, e.baseEnv)
	defer close(reqs)

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
		l, err := listen(srv.addr, srv.tcp)
		if err != nil {
			return fmt.Errorf("%s %s: %w", srv.what, srv.addr, err)
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
		e.after(e.opts.WatchdogEvery, timerFired{kind: watchdogTimer})
	}
	e.log.Info("the Emperor is ruling", "monitors", len(e.opts.Monitors), "binary", e.opts.Binary, "pid", os.Getpid())
	err = e.loop(ctx, reqs, cancelMonitors)
	e.cgroups.Wait() // every vassal's cgroup is gone before the Emperor is
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
			e.pending[0] = spawnRequest{}
			e.pending = e.pending[1:]
		case res := <-e.spawned:
			e.spawnDone(res)
		case batch := <-e.polled:
			for _, tok := range batch {
				e.fdReady(tok)
			}
		case t := <-e.timers:
			e.timerFired(t)
		case reply := <-e.queries:
			reply <- e.stats()
		case c := <-e.commands:
			c.reply <- e.command(c.args)
		case r := <-e.hookDone:
			e.hookFinished(r)
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

// after arms a timer that posts t to the loop. The callback touches no
// vassal state; a fire after the loop ended is dropped.
func (e *Emperor) after(d time.Duration, t timerFired) *time.Timer {
	return time.AfterFunc(d, func() {
		select {
		case e.timers <- t:
		case <-e.done:
		}
	})
}

// monitorEvent applies one monitor event to the table.
func (e *Emperor) monitorEvent(ev monitor.Event) {
	if e.ragnarok {
		return
	}
	v := e.vassals[ev.Key]
	switch ev.Op {
	case monitor.Touch:
		if v == nil {
			v = &vassal{key: ev.Key, ev: ev, want: true, received: map[protocol.Byte]uint64{}, firstRun: time.Now(), changedAt: time.Now()}
			e.vassals[ev.Key] = v
			e.transition(v, Waiting, "new config ("+ev.Reason+")")
			e.spawn(v)
			return
		}
		changed := ev.Version != v.ev.Version
		if changed {
			v.changedAt = time.Now()
		}
		v.ev = ev
		readded := !v.want
		v.want = true
		switch v.state {
		case Waiting:
			if changed && v.timer != nil {
				v.unloyalDeaths = 0
				e.spawn(v) // an operator's edit lifts the penalty
			}
		case Running:
			switch {
			case e.opts.Tyrant && !sameOwner(ev.Owner, v.owner):
				// Stop, then respawn as the new owner (or refuse root).
				v.stopCause = "owner_changed"
				e.stop(v, "tyrant: the config's owner changed")
			case ev.Version != v.version:
				e.reload(v, "config changed ("+ev.Reason+")")
			}
		case Stopping:
			if readded || changed {
				v.voluntary = false // restart once it is down
			}
		case Disabled:
			if v.held {
				break // stopped by command: only start brings it back
			}
			if ev.Version != v.version || (e.opts.Tyrant && !sameOwner(ev.Owner, v.owner)) {
				v.voluntary = false
				e.transition(v, Waiting, "config changed while disabled")
				e.spawn(v)
			}
		}
	case monitor.Destroy:
		if v == nil {
			return
		}
		v.want = false
		switch v.state {
		case Waiting, Disabled:
			e.remove(v, "config removed")
		case Running:
			e.stop(v, "config removed ("+ev.Reason+")")
		}
		// Spawning, Stopping and Cursed finish what they do; want decides
		// what comes after.
	}
}

// startSpawn queues a spawn of v on the spawner thread.
func (e *Emperor) startSpawn(v *vassal) {
	dir := e.cwd
	if v.ev.Path != "" {
		dir = filepath.Dir(v.ev.Path)
	}
	spec := Spec{
		Key:        v.key,
		Argv:       vassalArgv(&e.opts, &v.ev),
		Dir:        dir,
		Config:     v.ev.Config,
		Namespaces: e.opts.Namespaces,
		HostUID:    os.Getuid(),
		HostGID:    os.Getgid(),
	}
	v.owner = v.ev.Owner
	if n := len(v.ev.Config); n > protocol.MaxFrame && !e.opts.ExtendedFrames {
		v.version = v.ev.Version // refused as it is: only a change retries
		e.transition(v, Disabled, fmt.Sprintf("inline config is %d bytes, above the %d a uWSGI vassal reads from its config fd: "+
			"move parts into files it includes, or run our vassal (binary-path), which reads larger frames", n, protocol.MaxFrame))
		return
	}
	if e.opts.Tyrant {
		cred, err := tyrant.Credential(v.key.Name, v.ev.Owner)
		if err != nil {
			v.version = v.ev.Version // refused as it is: only a change retries
			e.transition(v, Disabled, err.Error())
			return
		}
		if spec.Namespaces.Has(unix.CLONE_NEWUSER) {
			// Root inside the namespace is the owner outside.
			spec.HostUID, spec.HostGID = int(cred.Uid), int(cred.Gid)
		} else {
			spec.Credential = cred
		}
	}
	e.isolate(&spec, v) // caps, hostname, groups, cgroup, hooks (isolation.go)
	e.transition(v, Spawning, "spawn")
	e.beginStarting(v)
	v.spawnVersion = v.ev.Version
	e.pending = append(e.pending, spawnRequest{spec: spec, gen: v.gen})
}

// spawnDone handles the spawner's answer.
func (e *Emperor) spawnDone(res spawnResult) {
	v := e.vassals[res.spec.Key]
	if v == nil || v.gen != res.gen || v.state != Spawning {
		// Cannot happen: Spawning is only left through here. Never leak.
		e.log.Error("spawn result for a vassal not spawning (bug)", "vassal", res.spec.Key.Name)
		if res.proc != nil {
			killTree(res.proc)
			e.closeProcess(res.proc)
		}
		return
	}
	if res.err != nil {
		e.doneStarting(v)
		v.lastExit = "spawn failed: " + res.err.Error()
		e.log.Error("spawn failed", e.attrs(v, "err", res.err, "argv", res.spec.Argv)...)
		if !v.want || e.ragnarok {
			e.remove(v, "spawn failed")
			return
		}
		v.unloyalDeaths++
		e.counters.Restarts["spawn_failed"]++
		e.wait(v, "spawn failed: "+res.err.Error())
		return
	}
	p := res.proc
	v.proc = p
	e.live++
	e.counters.Spawns++
	v.version = v.spawnVersion
	v.ready, v.accepting, v.loyal = false, false, false
	v.lastHeartbeat = time.Time{}
	if err := e.watch(v, p); err != nil {
		e.log.Error("cannot watch vassal fds", e.attrs(v, "err", err)...)
	}
	if res.spec.Config != nil {
		e.pushConfig(v)
	}
	e.transition(v, Running, fmt.Sprintf("spawned pid %d", p.pid))
	e.startHooks(v, p) // exec-as-emperor, off the loop (hooks.go)
	switch {
	case e.ragnarok:
		e.stop(v, "Ragnarok")
	case !v.want:
		e.stop(v, "config removed while spawning")
	case v.ev.Version != v.version:
		e.reload(v, "config changed while spawning")
	}
}

func sameOwner(a, b *monitor.Owner) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}

// watch registers a new process's control channel and pidfd with the
// poller.
func (e *Emperor) watch(v *vassal, p *process) error {
	e.nextTok++
	v.ctlTok = e.nextTok
	e.fds[v.ctlTok] = fdRef{v: v, p: p, kind: ctlFd}
	e.nextTok++
	v.pidTok = e.nextTok
	e.fds[v.pidTok] = fdRef{v: v, p: p, kind: pidFd}
	if err := e.poll.add(p.ctl, v.ctlTok); err != nil {
		return err
	}
	return e.poll.add(p.pidfd, v.pidTok)
}

// fdReady handles one readiness report from the poller.
func (e *Emperor) fdReady(tok uint64) {
	ref, ok := e.fds[tok]
	if !ok || e.vassals[ref.v.key] != ref.v || ref.v.proc != ref.p {
		return // stale: the fd belongs to a process we already let go
	}
	v, p := ref.v, ref.p
	switch ref.kind {
	case ctlFd:
		e.readControl(v, p, tok)
	case pidFd:
		st, exited, err := reap(p.pidfd)
		if err != nil {
			e.log.Error("waitid failed", e.attrs(v, "err", err)...)
			return
		}
		if !exited {
			e.poll.rearm(p.pidfd, tok)
			return
		}
		e.exited(v, st)
	}
}

// wait puts a vassal that should run into Waiting, with its penalty.
func (e *Emperor) wait(v *vassal, reason string) {
	d := time.Duration(0)
	if !e.opts.NoBlacklist {
		d = respawnDelay(v.unloyalDeaths, e.opts.Throttle, e.opts.MaxThrottle, false)
	}
	if d == 0 {
		e.transition(v, Waiting, reason)
		e.spawn(v)
		return
	}
	e.transition(v, Waiting, fmt.Sprintf("%s; respawn in %s", reason, d))
	v.timer = e.after(d, timerFired{key: v.key, gen: v.gen, kind: spawnTimer})
}

// exited handles the death of a vassal's process, whatever the order in
// which its EOF and its exit arrived (uWSGI's race, bug B4).
func (e *Emperor) exited(v *vassal, st exitStatus) {
	p := v.proc
	e.closeProcess(p, v.ctlTok, v.pidTok)
	v.proc = nil
	e.live--
	e.doneStarting(v)
	e.endTree(v, p, &st) // kill what is left in its cgroup; note an OOM kill (isolation.go)
	v.lastExit = st.String()
	reason := fmt.Sprintf("pid %d: %s", p.pid, st)
	restartReason := "died"
	if st.oom != "" {
		restartReason = "oom"
	}
	if v.killReason != "" {
		reason += " (" + v.killReason + ")"
		restartReason = v.killCause
		v.killReason, v.killCause = "", ""
	}
	if v.hbTimer != nil {
		v.hbTimer.Stop()
		v.hbTimer = nil
	}
	exiled := !st.signaled && st.code == protocol.ExileCode
	switch {
	case !v.want || e.ragnarok:
		e.remove(v, reason)
	case v.held:
		e.transition(v, Disabled, reason+"; stays down until started")
	case v.voluntary:
		e.transition(v, Disabled, reason+"; stays down until its config changes")
	case exiled && v.state != Stopping:
		e.transition(v, Disabled, reason+" (exiled); stays down until its config changes")
	case v.state == Stopping:
		restartReason = v.stopCause
		e.wait(v, reason+"; restarting")
	default:
		if time.Since(p.started) >= e.opts.StableRun {
			v.unloyalDeaths = 0 // it ran long enough: not a crash loop
		}
		if !v.loyal {
			v.unloyalDeaths++
		}
		e.wait(v, "died: "+reason)
	}
	if v.state == Waiting || v.state == Spawning {
		v.restarts++
		e.counters.Restarts[restartReason]++
	}
}

// remove takes a vassal out of the table.
func (e *Emperor) remove(v *vassal, reason string) {
	e.doneStarting(v)
	e.transition(v, Absent, reason)
	delete(e.vassals, v.key)
}

// closeProcess releases the Emperor's fds of a process and forgets its
// poller tokens (closing an fd also removes it from the epoll set).
func (e *Emperor) closeProcess(p *process, toks ...uint64) {
	for _, tok := range toks {
		if ref, ok := e.fds[tok]; ok && ref.p == p {
			delete(e.fds, tok)
		}
	}
	if p.ctl >= 0 {
		unix.Close(p.ctl)
		p.ctl = -1
	}
	if p.cfg >= 0 {
		unix.Close(p.cfg)
		p.cfg = -1
	}
	unix.Close(p.pidfd)
	p.pidfd = -1
}

// timerFired handles a timer event, dropping stale ones.
func (e *Emperor) timerFired(t timerFired) {
	switch t.kind {
	case mercyTimer:
		e.noMercy()
		return
	case buryTimer:
		e.buried = true
		return
	case statusTimer:
		e.sendStatus()
		return
	case throttleTimer:
		e.throttleFired()
		return
	case watchdogTimer:
		// Sent from the loop: when the loop stalls, the pings stop and
		// systemd acts.
		e.notify.send("WATCHDOG=1\n")
		e.after(e.opts.WatchdogEvery, t)
		return
	}
	v := e.vassals[t.key]
	if t.kind == startTimer {
		// Its gen is the start sequence: a start window outlives transitions.
		if v != nil && v.starting && v.startSeq == t.gen {
			e.doneStarting(v)
		}
		return
	}
	if v == nil || v.gen != t.gen {
		return
	}
	switch t.kind {
	case spawnTimer:
		if v.state == Waiting {
			v.timer = nil
			e.spawn(v)
		}
	case heartbeatTimer:
		if v.state == Running && v.proc == t.proc {
			e.heartbeatDue(v)
		}
	case killTimer:
		if (v.state == Stopping || v.state == Cursed) && v.proc != nil {
			e.log.Warn("vassal did not exit within the curse tolerance: SIGKILL", e.attrs(v, "tolerance", e.opts.CurseTolerance)...)
			if err := killTree(v.proc); err != nil {
				e.log.Error("kill failed", e.attrs(v, "err", err)...)
			}
			v.timer = e.after(e.opts.CurseTolerance, t)
		}
	}
}
