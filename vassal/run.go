package vassal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

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
// one. Until the loop takes them over, the sockets are released on any
// failure.
func (r *runner) run(ctx context.Context, logFile **os.File) (retErr error) {
	em, err := openEmperor(r.getenv)
	if err != nil {
		return fmt.Errorf("emperor channel: %w", err)
	}
	r.em = em
	var fetch func(string) ([]byte, error)
	if em != nil && em.cfg != nil {
		fetch = func(string) ([]byte, error) { return em.initialConfig() }
	}
	settings, err := loadSettings(r.o.Args, r.o.Env, false, r.getenv, fetch, r.log)
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
	looping := false // once true, the first generation owns socks
	defer func() {
		if retErr != nil && !looping {
			r.releaseSockets(socks)
		}
	}()
	if settings.Pidfile != "" {
		if err := writePidfile(settings.Pidfile); err != nil {
			return err
		}
		r.pidfiles = append(r.pidfiles, settings.Pidfile)
	}
	if settings.PrivilegedPatch != "" {
		return r.binaryPatch(settings.PrivilegedPatch, socks)
	}
	if err := r.dropPrivileges(settings); err != nil {
		return err
	}
	if settings.Pidfile2 != "" {
		if err := writePidfile(settings.Pidfile2); err != nil {
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
			return err
		}
		r.fifoCount = len(settings.MasterFifo)
		defer closeFifos()
	}
	if settings.Stats != "" {
		st, err := listenStats(settings.Stats, settings.StatsHTTP)
		if err != nil {
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

	looping = true
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
