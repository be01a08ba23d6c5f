package vassal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/internal/procwait"
	"github.com/emperor-dev/emperor/protocol"
)

// Options configures Run.
type Options struct {
	// Args is the command line without argv[0], as uWSGI takes it:
	// --ini F, --xml F, --yaml F, --json F (F may be emperor://NAME),
	// --set K=V, --include F, --inherit F, --KEY VALUE.
	Args []string
	// Env is the vassal's environment: what $(NAME) sees, where the
	// Emperor's fds are named, and the base of every worker's environment.
	// Default os.Environ().
	Env []string
	// Self is the path of a binary that implements the ListenExecArg mode
	// (the vassal binary itself). Default /proc/self/exe.
	Self string
	// Logger receives the vassal's logs; every line carries
	// vassal=<config name>. Default: discard.
	Logger *slog.Logger
	// Stdout and Stderr are given to the workers; default the vassal's.
	Stdout, Stderr io.Writer
	// Signals, when not nil, delivers the signals the caller receives:
	// SIGHUP reloads gracefully, SIGTERM stops (or reloads, with
	// die-on-term = false), any other signal stops.
	Signals <-chan os.Signal
}

// Run runs the vassal until it is told to stop: by the Emperor, or by ctx
// being canceled (the caller cancels it on SIGTERM, SIGINT and SIGQUIT). It
// returns nil after a requested stop, and an error when the config is
// invalid, a socket cannot be bound, or the Emperor's channel was closed;
// cmd/vassal exits 1 then. Every worker has exited when Run returns.
func Run(ctx context.Context, o Options) error {
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Self == "" {
		o.Self = "/proc/self/exe"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	r := &runner{
		o:       o,
		log:     o.Logger.With("vassal", NameOf(o.Args)),
		getenv:  envLookup(o.Env),
		events:  make(chan event, 64),
		done:    make(chan struct{}),
		spawns:  make(chan spawnRequest),
		name:    NameOf(o.Args),
		started: time.Now(),
		sockets: map[socketKey]*listener{},
		shared:  map[string]*listener{},
	}
	r.leaders.Store(&[]int{})
	r.orphans = newOrphanReaper(r.log)
	go spawner(r.spawns, r.orphans)
	go r.orphans.run(r.done)
	defer close(r.spawns) // after every worker is reaped: see loop
	var logFile *os.File
	err := r.run(ctx, &logFile)
	if err != nil && logFile != nil {
		// The caller logs the failure to its own output; logto gets it
		// too.
		r.log.Error("vassal failed", "err", err)
	}
	if logFile != nil {
		logFile.Close()
	}
	return err
}

// run is Run once the runner exists. It sets *logFile when logto opened
// one.
func (r *runner) run(ctx context.Context, logFile **os.File) error {
	em, err := openEmperor(r.getenv)
	if err != nil {
		return fmt.Errorf("emperor channel: %w", err)
	}
	r.em = em
	var fetch func(string) ([]byte, error)
	if em != nil && em.cfg != nil {
		fetch = func(string) ([]byte, error) { return em.initialConfig() }
	}
	settings, err := loadSettings(r.o.Args, r.getenv, fetch, r.log)
	if err != nil {
		return err
	}
	r.settings = settings
	if settings.LogTo != "" {
		f, err := openLogTo(settings.LogTo)
		if err != nil {
			return err
		}
		*logFile = f
		r.o.Stdout, r.o.Stderr = f, f
		level := slog.LevelInfo
		if r.o.Logger.Enabled(context.Background(), slog.LevelDebug) {
			level = slog.LevelDebug
		}
		r.log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})).With("vassal", r.name)
	}
	if settings.ProcnamePrefix != "" {
		setProcname(settings.ProcnamePrefix+"vassal", r.log)
	}
	socks, err := r.acquireSockets(settings)
	if err != nil {
		return err
	}
	if settings.Pidfile != "" {
		if err := writePidfile(settings.Pidfile); err != nil {
			r.releaseSockets(socks)
			return err
		}
		r.pidfiles = append(r.pidfiles, settings.Pidfile)
	}
	if settings.PrivilegedPatch != "" {
		return r.binaryPatch(settings.PrivilegedPatch, socks)
	}
	if err := r.dropPrivileges(settings); err != nil {
		r.releaseSockets(socks)
		return err
	}
	if settings.Pidfile2 != "" {
		if err := writePidfile(settings.Pidfile2); err != nil {
			r.releaseSockets(socks)
			return err
		}
		r.pidfiles = append(r.pidfiles, settings.Pidfile2)
	}
	if settings.UnprivilegedPatch != "" {
		return r.binaryPatch(settings.UnprivilegedPatch, socks)
	}
	if nb, err := openNotify(); err != nil {
		r.log.Warn("no sd_notify bridge for the workers", "err", err)
	} else {
		r.notify = nb
		defer nb.close()
		go nb.read(func(m notifyMsg) { r.post(notified{msg: m, pgrp: processGroup(m.pid)}) })
	}
	if len(settings.MasterFifo) > 0 {
		closeFifos, err := r.openFifos(settings.MasterFifo)
		if err != nil {
			r.releaseSockets(socks)
			return err
		}
		r.fifoCount = len(settings.MasterFifo)
		defer closeFifos()
	}
	if settings.Stats != "" {
		st, err := listenStats(settings.Stats, settings.StatsHTTP)
		if err != nil {
			r.releaseSockets(socks)
			return err
		}
		r.log.Info("stats server listening", "addr", st.ln.Addr().String(), "http", settings.StatsHTTP)
		defer func() { st.close(r.settings.Vacuum) }()
		go st.serve(r)
	}
	if em != nil {
		go em.readControl(
			func(b protocol.Byte) { r.post(emperorByte{b}) },
			func(err error) { r.post(emperorLost{err}) })
	}
	r.send(protocol.Spawned)

	err = r.loop(ctx, settings, socks)
	for _, l := range r.shared {
		if cerr := l.close(r.settings.Vacuum); cerr != nil {
			r.log.Warn("closing shared socket", "addr", l.spec.Addr, "err", cerr)
		}
	}
	if r.settings.Vacuum {
		for _, p := range r.pidfiles {
			if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				r.log.Warn("vacuum: cannot remove pidfile", "path", p, "err", rerr)
			}
		}
	}
	return err
}

// openLogTo opens the logto file for appending, creating it 0640.
func openLogTo(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("logto: %w", err)
	}
	return f, nil
}

// setProcname sets the vassal's process name (/proc/self/comm, at most 15
// bytes).
func setProcname(name string, log *slog.Logger) {
	if len(name) > 15 {
		name = name[:15]
	}
	if err := os.WriteFile("/proc/self/comm", []byte(name), 0); err != nil {
		log.Warn("procname-prefix: cannot set the process name", "err", err)
	}
}

// writePidfile writes the vassal's pid to path.
func writePidfile(path string) error {
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	return nil
}

// envLookup answers lookups from an environment list; the last entry of a
// name wins, as in exec.Cmd.
func envLookup(env []string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
				return v, true
			}
		}
		return "", false
	}
}

// Events the loop receives.
type event interface{ isEvent() }

// emperorByte is a control byte from the Emperor.
type emperorByte struct{ b protocol.Byte }

// emperorLost: the control channel failed or was closed.
type emperorLost struct{ err error }

// configLoaded is the result of reading the config again for a reload.
type configLoaded struct {
	settings Settings
	err      error
}

// workerExited: a worker is dead but not reaped; the loop closes reap once
// it will never signal the worker again.
type workerExited struct {
	gen, slot, pid int
	exit           procwait.Status
	err            error
	stderr         string // the last line the worker wrote to stderr
	reap           chan struct{}
}

// notified is an sd_notify message from a process whose process group is
// pgrp.
type notified struct {
	msg  notifyMsg
	pgrp int
}

// readyTimedOut: ready-timeout passed since the vassal started.
type readyTimedOut struct{ after time.Duration }

// heartbeatDue: time to send the next heartbeat. seq tells stale timers
// apart.
type heartbeatDue struct{ seq int }

// respawnDue: a respawn backoff is over. seq tells stale timers apart.
type respawnDue struct{ gen, slot, seq int }

// mercyExpired: a stopping generation had worker-reload-mercy to exit.
type mercyExpired struct{ gen int }

// probed is one readiness probe outcome for a generation.
type probed struct {
	gen     int
	forSlot int // a replacement worker's probe (see recycle), or 0
	outcome probeOutcome
}

func (emperorByte) isEvent()   {}
func (emperorLost) isEvent()   {}
func (configLoaded) isEvent()  {}
func (workerExited) isEvent()  {}
func (respawnDue) isEvent()    {}
func (mercyExpired) isEvent()  {}
func (probed) isEvent()        {}
func (readyTimedOut) isEvent() {}
func (notified) isEvent()      {}
func (netSample) isEvent()     {}

// netSample is one reading of the TCP table, for idle and vassal-sos.
type netSample struct {
	at      time.Time
	entries []tcpEntry
	err     error
}

// sosBacklogEvery rate-limits vassal-sos-backlog.
const sosBacklogEvery = 5 * time.Second

// sampleEvery is the period of the TCP table readings.
const sampleEvery = time.Second

func (heartbeatDue) isEvent() {}

// socketKey identifies a socket across config versions.
type socketKey struct {
	kind   SocketKind
	addr   string
	shared int // SocketSpec.Shared
}

// keyOf is the key of the socket spec names.
func keyOf(spec SocketSpec) socketKey { return socketKey{spec.Kind, spec.Addr, spec.Shared} }

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

// notifyPath is the NOTIFY_SOCKET workers get, or "".
func (r *runner) notifyPath() string {
	if r.notify == nil {
		return ""
	}
	return r.notify.path
}

// maxFailuresBeforeReady is how many worker failures in a row, before the
// vassal was ever ready, make it give up.
const maxFailuresBeforeReady = 5

// generation is the set of workers started from one version of the config.
type generation struct {
	id          int
	settings    Settings
	sockets     []*listener
	spec        *workerSpec
	workers     []*worker
	started     time.Time
	ready       bool
	stopping    bool
	cancelProbe context.CancelFunc
	mercy       *time.Timer
}

// worker is one slot of a generation; its process changes on respawn.
type worker struct {
	slot    int
	cmd     *exec.Cmd // nil when not running
	pid     int
	started time.Time
	backoff time.Duration // wait before its latest (re)start; 0 at first
	seq     int           // bumped for every respawn timer
	timer   *time.Timer   // pending respawn
	// From sd_notify, reset at every start: the last STATUS= and the time
	// of the last WATCHDOG=1 (zero: the worker does not use the watchdog).
	status   string
	watchdog time.Time
	respawns int // starts of this slot after the first
	// Recycling (max-worker-lifetime, reload-on-rss): lifetime is this
	// worker's jittered limit; replaces is the slot a replacement takes
	// over once ready; retired marks a replaced worker, never respawned.
	lifetime    time.Duration
	replaces    int
	retired     bool
	cancelProbe context.CancelFunc
}

// worker returns the worker in slot, or nil.
func (g *generation) worker(slot int) *worker {
	for _, w := range g.workers {
		if w.slot == slot {
			return w
		}
	}
	return nil
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

// startLoad reads the config again in its own goroutine: emperor:// configs
// wait on the Emperor.
func (r *runner) startLoad() {
	r.loading = true
	r.log.Info("reloading: reading the config again")
	var fetch func(string) ([]byte, error)
	if r.em != nil && r.em.cfg != nil {
		fetch = func(string) ([]byte, error) { return r.em.reloadConfig() }
	}
	go func() {
		s, err := loadSettings(r.o.Args, r.getenv, fetch, r.log)
		r.post(configLoaded{settings: s, err: err})
	}()
}

// configLoaded starts the new generation of a reload.
func (r *runner) configLoaded(ev configLoaded) {
	r.loading = false
	if r.stopping {
		return
	}
	if r.reloadAgain {
		// A newer version was asked for meanwhile: read that one.
		r.reloadAgain = false
		r.startLoad()
		return
	}
	if ev.err != nil {
		r.log.Error("reload failed, the running workers keep serving", "err", ev.err)
		r.send(protocol.Accepting)
		return
	}
	socks, err := r.acquireSockets(ev.settings)
	if err != nil {
		r.log.Error("reload failed, the running workers keep serving", "err", err)
		r.send(protocol.Accepting)
		return
	}
	// A reload that was still starting is superseded; the oldest
	// generation keeps serving until the new one is ready.
	for i, g := range r.gens {
		if i > 0 && !g.ready {
			r.stopGeneration(g, "superseded by a newer reload")
		}
	}
	if r.brutalReload {
		// Master FIFO R: the old workers die now, without waiting for the
		// new ones.
		r.brutalReload, r.brutal = false, true
		for _, g := range r.gens {
			r.stopGeneration(g, "brutal reload")
		}
		r.brutal = false
	}
	r.settings = ev.settings
	r.startGeneration(ev.settings, socks)
}

// startGeneration starts settings.Processes workers on socks and probes
// them.
func (r *runner) startGeneration(s Settings, socks []*listener) {
	r.nextGen++
	g := &generation{id: r.nextGen, settings: s, sockets: socks, started: time.Now()}
	files := make([]*os.File, len(socks))
	for i, l := range socks {
		files[i] = l.file
	}
	g.spec = &workerSpec{
		self:    r.o.Self,
		command: s.Exec,
		dir:     s.Chdir,
		env:     workerEnv(r.o.Env, s.Env, socks, r.notifyPath()),
		files:   files,
		caps:    r.ambientCaps,
		prefix:  s.ProcnamePrefix,
		stdout:  r.o.Stdout,
		stderr:  r.o.Stderr,
	}
	r.gens = append(r.gens, g)
	r.setHeartbeat(s.Heartbeat)
	r.idled = false
	r.startSupervising(s)
	r.lastActive = time.Now()
	if !r.sampling && ((s.Idle > 0 && s.DieOnIdle) || s.SOS > 0 || s.SOSBacklog > 0) {
		r.sampling = true
		ctx, cancel := context.WithCancel(context.Background())
		r.sampleCancel = cancel
		go r.sample(ctx)
	}
	r.log.Info("starting workers", "gen", g.id, "processes", s.Processes, "exec", s.Exec)
	for i := range s.Processes {
		w := &worker{slot: i + 1}
		g.workers = append(g.workers, w)
		r.startWorker(g, w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancelProbe = cancel
	p := newProber(socks, g.started, r.runningPids, r.log.With("gen", g.id))
	go p.run(ctx, func(o probeOutcome) { r.post(probed{gen: g.id, outcome: o}) })
}

// runningPids returns the snapshot of running workers' pids; safe from any
// goroutine.
func (r *runner) runningPids() []int { return *r.leaders.Load() }

// updateLeaders refreshes the snapshot runningPids returns.
func (r *runner) updateLeaders() {
	var pids []int
	for _, g := range r.gens {
		for _, w := range g.workers {
			if w.cmd != nil {
				pids = append(pids, w.pid)
			}
		}
	}
	r.leaders.Store(&pids)
}

// startWorker starts the process of one worker slot through the spawner
// thread. A failed start is handled like a worker that died at once.
func (r *runner) startWorker(g *generation, w *worker) {
	tap, stderr, err := tapStderr(g.spec.stderr)
	if err != nil {
		r.log.Error("cannot start worker", "gen", g.id, "worker", w.slot, "err", err)
		r.workerFailed(g, w, 0, err.Error())
		return
	}
	reply := make(chan spawnReply, 1)
	r.spawns <- spawnRequest{spec: g.spec, stderr: stderr, reply: reply}
	res := <-reply
	stderr.Close() // the worker has its copy
	if res.err != nil {
		r.log.Error("cannot start worker", "gen", g.id, "worker", w.slot, "err", res.err)
		r.workerFailed(g, w, 0, "worker-exec: "+res.err.Error())
		return
	}
	if !w.started.IsZero() {
		w.respawns++
	}
	w.cmd, w.pid, w.started = res.cmd, res.cmd.Process.Pid, time.Now()
	w.status, w.watchdog = "", time.Time{}
	w.lifetime = jittered(g.settings.MaxWorkerLifetime)
	r.updateLeaders()
	r.log.Info("worker started", "gen", g.id, "worker", w.slot, "pid", w.pid)
	cmd, gen, slot, pid := res.cmd, g.id, w.slot, w.pid
	r.waiters.Add(1)
	go func() {
		defer r.waiters.Done()
		exit, err := awaitExit(pid)
		reap := make(chan struct{})
		r.post(workerExited{gen: gen, slot: slot, pid: pid, exit: exit, err: err, stderr: tap.lastLine(tapDrain), reap: reap})
		select {
		case <-reap:
		case <-r.done:
		}
		_ = cmd.Wait() // reaps; the status was read above
		r.orphans.reaped(pid)
	}()
}

// generation returns the live generation id, or nil.
func (r *runner) generation(id int) *generation {
	for _, g := range r.gens {
		if g.id == id {
			return g
		}
	}
	return nil
}

// workerExited handles the death of a worker process.
func (r *runner) workerExited(ev workerExited) {
	defer close(ev.reap)
	g := r.generation(ev.gen)
	w := g.worker(ev.slot)
	if w == nil || w.pid != ev.pid {
		return
	}
	lived := time.Since(w.started)
	w.cmd = nil
	r.updateLeaders()
	how := ev.exit.String()
	if ev.err != nil {
		how = ev.err.Error()
	}
	if w.retired || w.replaces != 0 {
		r.recycledExited(g, w, how)
		return
	}
	if g.stopping {
		r.log.Info("worker stopped", "gen", g.id, "worker", w.slot, "pid", ev.pid, "how", how)
		r.maybeFinished(g)
		return
	}
	r.log.Warn("worker died", "gen", g.id, "worker", w.slot, "pid", ev.pid, "how", how, "lived", lived.Round(time.Millisecond))
	cause := "worker-exec: " + how
	if ev.stderr != "" {
		cause += ": " + ev.stderr
	}
	r.workerFailed(g, w, lived, cause)
}

// workerFailed counts a worker failure before the vassal was ever ready,
// gives up after maxFailuresBeforeReady in a row, and otherwise schedules
// the respawn.
func (r *runner) workerFailed(g *generation, w *worker, lived time.Duration, cause string) {
	if w.replaces != 0 {
		r.log.Warn("replacement worker failed; the old worker keeps serving", "gen", g.id, "worker", w.slot, "cause", cause)
		r.dropReplacement(w)
		g.workers = removeWorker(g.workers, w)
		return
	}
	if !r.loyal {
		r.failures++
		r.cause = cause
		if r.failures >= maxFailuresBeforeReady {
			r.stop("workers keep failing", fmt.Errorf("worker failed %d times in a row before ever being ready: %s", r.failures, cause))
			return
		}
	}
	r.scheduleRespawn(g, w, lived)
}

// scheduleRespawn starts the backoff before a dead worker runs again.
func (r *runner) scheduleRespawn(g *generation, w *worker, lived time.Duration) {
	w.backoff = nextBackoff(w.backoff, lived)
	w.seq++
	r.log.Info("respawning worker", "gen", g.id, "worker", w.slot, "in", w.backoff)
	w.timer = r.after(w.backoff, respawnDue{gen: g.id, slot: w.slot, seq: w.seq})
}

// respawnDue restarts a worker whose backoff is over.
func (r *runner) respawnDue(ev respawnDue) {
	g := r.generation(ev.gen)
	if g == nil || g.stopping {
		return
	}
	w := g.worker(ev.slot)
	if w == nil || w.seq != ev.seq || w.cmd != nil {
		return
	}
	w.timer = nil
	r.startWorker(g, w)
}

// probed handles a readiness probe outcome.
func (r *runner) probed(ev probed) {
	if ev.forSlot != 0 {
		r.replacementProbed(ev)
		return
	}
	g := r.generation(ev.gen)
	if g == nil || g.ready || g.stopping || !ev.outcome.answered {
		return
	}
	if ev.outcome.acceptor != 0 && !slices.ContainsFunc(g.workers, func(w *worker) bool {
		return w.cmd != nil && w.pid == ev.outcome.acceptor
	}) {
		return // an older generation answered
	}
	g.ready = true
	g.cancelProbe()
	r.log.Info("workers ready", "gen", g.id, "after", time.Since(g.started).Round(time.Millisecond), "answered_by", ev.outcome.acceptor)
	for _, old := range r.gens {
		if old.id < g.id && !old.stopping {
			r.stopGeneration(old, fmt.Sprintf("replaced by generation %d", g.id))
		}
	}
	r.send(protocol.Accepting)
	if !r.loyal {
		r.loyal = true
		r.send(protocol.Loyal)
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

// stopGeneration sends SIGTERM to every worker of g, and SIGKILL to those
// still running after worker-reload-mercy. Pending respawns are dropped.
func (r *runner) stopGeneration(g *generation, reason string) {
	if g.stopping {
		return
	}
	g.stopping = true
	g.cancelProbe()
	r.log.Info("stopping workers", "gen", g.id, "reason", reason, "mercy", g.settings.Mercy)
	sig := syscall.SIGTERM
	if g.settings.Mercy == 0 || r.brutal {
		sig = syscall.SIGKILL
	}
	for _, w := range g.workers {
		if w.timer != nil {
			w.timer.Stop()
			w.timer = nil
		}
		w.seq++
		if w.cmd != nil {
			if err := signalGroup(w.pid, sig); err != nil {
				r.log.Error("cannot signal worker", "gen", g.id, "worker", w.slot, "pid", w.pid, "err", err)
			}
			if r.paused {
				// A stopped process only acts on SIGTERM once continued.
				_ = signalGroup(w.pid, syscall.SIGCONT)
			}
		}
	}
	if g.settings.Mercy > 0 {
		g.mercy = r.after(g.settings.Mercy, mercyExpired{gen: g.id})
	}
	r.maybeFinished(g)
}

// mercyExpired kills the workers that ignored SIGTERM.
func (r *runner) mercyExpired(ev mercyExpired) {
	g := r.generation(ev.gen)
	if g == nil {
		return
	}
	for _, w := range g.workers {
		if w.cmd != nil {
			r.log.Warn("worker ignored SIGTERM for worker-reload-mercy, killing it", "gen", g.id, "worker", w.slot, "pid", w.pid)
			if err := signalGroup(w.pid, syscall.SIGKILL); err != nil {
				r.log.Error("cannot kill worker", "gen", g.id, "worker", w.slot, "pid", w.pid, "err", err)
			}
		}
	}
}

// maybeFinished forgets a stopping generation once none of its workers
// runs, and releases its sockets.
func (r *runner) maybeFinished(g *generation) {
	if !g.stopping || slices.ContainsFunc(g.workers, func(w *worker) bool { return w.cmd != nil }) {
		return
	}
	if g.mercy != nil {
		g.mercy.Stop()
	}
	r.gens = slices.DeleteFunc(r.gens, func(x *generation) bool { return x == g })
	r.log.Info("workers gone", "gen", g.id)
	r.releaseSockets(g.sockets)
}
