// Command emperor governs vassals: one supervised process per config found
// by its monitors (a directory, a glob, ...), in the tradition of the uWSGI
// Emperor and compatible with it.
//
//	emperor --dir /etc/vassals
//	emperor --emperor 'glob:///opt/apps/*/app.ini' --binary-path /usr/bin/uwsgi
//	emperor --ini /etc/uwsgi/emperor.ini
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/guardian"
	"github.com/emperor-dev/emperor/internal/logburst"
	"github.com/emperor-dev/emperor/monitor"
	_ "github.com/emperor-dev/emperor/monitor/amqp"
	_ "github.com/emperor-dev/emperor/monitor/files"
	_ "github.com/emperor-dev/emperor/monitor/mongodb"
	_ "github.com/emperor-dev/emperor/monitor/pg"
	_ "github.com/emperor-dev/emperor/monitor/zmq"
	"github.com/emperor-dev/emperor/namespaces"
)

// Version is the Emperor's version, reported as %V and by --version.
var Version = "0.1.0-dev"

func main() {
	if namespaces.IsInit() {
		namespaces.Init() // the hidden init stage of a vassal; never returns
	}
	if guardian.IsGuardian() {
		guardian.Main() // the Emperor's hidden guardian; never returns
	}
	reexecWithoutAsyncPreemption()
	collectSooner()
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// preemptEnv marks the re-executed process and keeps the user's GODEBUG.
const preemptEnv = "_EMPEROR_GODEBUG"

// reexecWithoutAsyncPreemption re-executes the Emperor with async
// preemption off (and the periodic GOMAXPROCS update, see below). The Go runtime preempts goroutines with SIGURG, which
// signal.Notify cannot tell from a user's SIGURG, and SIGURG means "clear the
// blacklist" to an Emperor. The loop never runs long without a function
// call, so cooperative preemption is enough.
func reexecWithoutAsyncPreemption() {
	if _, done := os.LookupEnv(preemptEnv); done {
		return
	}
	orig := os.Getenv("GODEBUG")
	// updatemaxprocs=0: GOMAXPROCS need not follow cgroup changes, which
	// the runtime would otherwise poll for every second of an idle Emperor.
	godebug := "asyncpreemptoff=1,updatemaxprocs=0"
	if orig != "" {
		godebug = orig + "," + godebug
	}
	env := append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") }),
		"GODEBUG="+godebug, preemptEnv+"="+orig)
	exe, err := os.Executable()
	if err != nil {
		return // run with preemption on: SIGURG may then be spurious
	}
	_ = syscall.Exec(exe, os.Args, env)
}

// collectSooner sets the garbage collector's target to 50% heap growth
// (Go's default is 100%) unless GOGC says otherwise. The Emperor keeps
// little live memory and allocates little when idle, so this costs almost
// no CPU, while bursts (2,000 stats clients at 1,000 vassals, a flood of
// configs) leave a smaller peak: the fault suite's slow-clients peak went
// from about 33 to about 29 MiB.
//
// The heap profiler's sampling is off: nothing reads its profiles, and its
// bucket table is memory the Emperor would hold for nothing.
func collectSooner() {
	runtime.MemProfileRate = 0
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(50)
	}
}

// vassalEnviron is the environment vassals derive theirs from: ours, minus
// what the re-exec added.
func vassalEnviron() []string {
	orig, marked := os.LookupEnv(preemptEnv)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, preemptEnv+"=") || (marked && strings.HasPrefix(kv, "GODEBUG="))
	})
	if marked && orig != "" {
		env = append(env, "GODEBUG="+orig)
	}
	return withoutEmperorOptions(env)
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return status(ctx, args[1:], stdout, stderr)
		case "reload", "stop", "start", "blacklist-clear", "rescan":
			return control(ctx, args, stdout, stderr)
		}
	}
	s, err := parseSettings(args)
	if err != nil {
		fmt.Fprintln(stderr, "emperor:", err)
		return 2
	}
	if s.help {
		fmt.Fprint(stdout, s.usage())
		return 0
	}
	if s.version {
		fmt.Fprintln(stdout, "emperor", Version)
		return 0
	}
	if s.proc.monitorList {
		printMonitorList(stdout)
		return 0
	}
	// The image that dropped privileges by re-executing (process.go) is
	// already detached, logging where it should and past the root phase.
	dropped := os.Getenv(dropEnv) != ""
	if code, done := s.life.detach(stderr, dropped); done { // daemonize (daemon.go)
		return code
	}
	if err := s.life.openLog(dropped); err != nil { // logto (logging.go)
		fmt.Fprintln(stderr, "emperor:", err)
		return 1
	}
	logger, err := newLogger(s, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "emperor:", err)
		return 2
	}
	s.logNotices(logger)
	// Pidfiles and hooks around the start and the privilege drop, in
	// uWSGI's order (lifecycle.go, process.go).
	if !dropped {
		uid, gid := s.proc.ids()
		err = s.life.beforeDrop(logger, s.hookTimeout, uid, gid)
		if err == nil {
			s.proc.listeners, err = bindEarly(s, uid, gid) // listeners.go
		}
	}
	if err == nil {
		var release func()
		if release, err = s.proc.setup(logger, s.tyrant); err == nil { // umask, flock, max-fd, uid/gid/cap, chdir
			defer release()
			os.Unsetenv(detachedEnv) // past the drop: no vassal gets it
			err = s.life.afterDrop(logger, s.hookTimeout)
		}
	}
	if err == nil {
		err = serve(ctx, s, logger)
	}
	s.life.atExit(logger, s.hookTimeout)
	if err != nil {
		logger.Error("the Emperor failed", "err", err)
		return 1
	}
	return s.life.restartIfAsked(logger) // touch-reload (touchreload.go)
}

// parseSettings reads the command line and every config file it names.
func parseSettings(args []string) (*settings, error) {
	l := &config.Loader{Env: config.Env{Version: Version}, Environ: emperorEnvOptions(os.Environ()), ArgKind: uwsgiArgKind}
	c, err := l.Args(args)
	if err != nil {
		return nil, err
	}
	s := &settings{placeholderNames: map[string]bool{}, monitors: monitor.NewSettings()}
	raw := &config.Config{Options: slices.Clone(c.Options)}
	// set-placeholder KEY=VALUE defines %(KEY).
	var opts []config.Option
	for _, o := range c.Options {
		if o.Key == "set-placeholder" || o.Key == "set-ph" {
			k, v, ok := strings.Cut(o.Value, "=")
			if !ok {
				return nil, &config.Error{File: o.File, Line: o.Line, Key: o.Key, Err: errors.New("want KEY=VALUE")}
			}
			s.placeholderNames[k] = true
			opts = append(opts, config.Option{Key: k, Value: v, File: o.File, Line: o.Line})
			continue
		}
		opts = append(opts, o)
	}
	c.Options = opts
	if err := c.Resolve(l); err != nil {
		return nil, err
	}
	c.Options = slices.DeleteFunc(c.Options, func(o config.Option) bool { return s.placeholderNames[o.Key] })
	if err := s.apply(c, raw); err != nil {
		return nil, err
	}
	return s, nil
}

func newLogger(s *settings, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if s.logLevel != "" {
		if err := level.UnmarshalText([]byte(s.logLevel)); err != nil {
			return nil, fmt.Errorf("log-level: %w", err)
		}
	}
	ho := &slog.HandlerOptions{Level: level, ReplaceAttr: s.life.replaceTime()} // log-date FORMAT
	// Every line, the monitors' too, goes through logburst: no vassal, no
	// config source can fill the log with one line repeated.
	switch s.logFormat {
	case "", "text":
		return slog.New(logburst.New(slog.NewTextHandler(w, ho))), nil
	case "json":
		return slog.New(logburst.New(slog.NewJSONHandler(w, ho))), nil
	}
	return nil, fmt.Errorf("log-format %q: want text or json", s.logFormat)
}

// serve builds the monitors and the Emperor and runs it until Ragnarok.
func serve(ctx context.Context, s *settings, logger *slog.Logger) error {
	if len(s.emperors) == 0 {
		return errors.New("no monitor: give --dir DIR, --glob PATTERN or --emperor VALUE (see --help)")
	}
	binary, err := s.vassalBinaries()
	if err != nil {
		return err
	}
	ns, err := namespaces.Parse(s.useClone)
	if err != nil {
		return fmt.Errorf("emperor-use-clone: %w", err)
	}
	iso, err := isolationOptions(s)
	if err != nil {
		return err
	}
	freq := s.freq
	if freq == 0 {
		freq = 3 * time.Second
	}
	ready := make(chan string, len(s.emperors))
	var mons []monitor.Monitor
	for _, value := range s.emperors {
		m, err := monitor.Open(value, monitor.Options{
			Freq: freq, NoFollow: s.noFollow || s.tyrantNofollow, Extensions: s.extraExtensions, Tyrant: s.tyrant,
			Ready: ready, Logger: logger, Settings: s.monitors,
		})
		if err != nil {
			return err
		}
		mons = append(mons, m)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGWINCH, syscall.SIGURG,
		syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	signal.Ignore(syscall.SIGPIPE)
	defer signal.Stop(sigs)
	emperorSigs, stopSigs := s.life.signals(sigs, freq, logger) // log-reopen, touch-reload (touchreload.go)
	defer stopSigs()

	listeners, err := inheritedListeners() // bound before the privilege drop (listeners.go)
	if err != nil {
		return err
	}
	opts := emperor.Options{
		Listeners:       listeners,
		Monitors:        mons,
		Ready:           ready,
		Binary:          binary,
		Wrapper:         s.wrapper,
		WrapperOverride: s.wrapperOverride,
		WrapperFallback: s.wrapperFallback,
		MagicExec:       s.magicExec,
		// A wrapper may run anything: only frames uWSGI reads.
		ExtendedFrames: !strings.HasPrefix(filepath.Base(binary), "uwsgi") && s.wrapper == "" &&
			len(s.wrapperOverride) == 0 && len(s.wrapperFallback) == 0,
		VassalSet:            s.vassalSet,
		IncludeBefore:        fromHere(s.includeBefore),
		Include:              fromHere(s.include),
		InheritBefore:        fromHere(s.inheritBefore),
		Inherit:              fromHere(s.inherit),
		ExtraExtensions:      s.extraExtensions,
		GracefulShutdown:     s.graceful,
		Namespaces:           ns,
		Tyrant:               s.tyrant,
		TyrantNoFollow:       s.noFollow || s.tyrantNofollow,
		ReloadMercy:          s.reloadMercy,
		CurseTolerance:       s.curseTolerance,
		RequiredHeartbeat:    s.heartbeat,
		Throttle:             s.throttle,
		MaxThrottle:          s.maxThrottle,
		NoBlacklist:          s.noBlacklist,
		Env:                  vassalEnviron(),
		Signals:              emperorSigs,
		VassalsStartHook:     s.life.vassalsStartHook,
		VassalsStopHook:      s.life.vassalsStopHook,
		Stats:                s.stats,
		StatsHTTP:            s.statsHTTP,
		CommandSocket:        s.commandSocket,
		WaitForCommand:       s.waitForCommand,
		WaitForCommandIgnore: s.waitIgnore,
		Metrics:              s.metrics,
		MetricsStatesOnly:    s.metricsStates,
		MaxStarting:          s.maxStarting,
		ThrottleBurst:        s.throttleBurst,
		NotifySocket:         os.Getenv("NOTIFY_SOCKET"),
		WatchdogEvery:        emperor.WatchdogInterval(os.Environ(), os.Getpid()),
		Version:              Version,
		Logger:               logger,
		ReleaseMemory:        true,
	}
	iso.resolveCgroup(logger)
	iso.apply(&opts)
	em, err := emperor.New(opts)
	if err != nil {
		return err
	}
	return em.Run(ctx)
}

// fromHere makes the relative paths of vassals-include and friends
// absolute, from the Emperor's working directory: vassals run in their
// config's directory, where uWSGI's glob monitor starts them in the
// Emperor's, so "vassals-include = common.ini" means the file beside the
// Emperor's start, as it does for uWSGI (Subscribie's emperor.ini relies on
// it). Scheme URLs (emperor://, http://) and empty values are kept.
func fromHere(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = p
		if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			out[i] = abs
		}
	}
	return out
}

// vassalBinaries resolves binary-path when it is what vassals run. With
// emperor-wrapper it is not, and with overrides or fallbacks a missing one
// is no reason to refuse to start: each spawn picks the first that can run
// (package emperor's wrapper.go), so binary-path is then passed unresolved.
func (s *settings) vassalBinaries() (string, error) {
	if s.wrapper != "" {
		return s.binary, nil
	}
	binary, err := vassalBinary(s.binary)
	if err != nil && (len(s.wrapperOverride) > 0 || len(s.wrapperFallback) > 0) {
		return cmp.Or(s.binary, "vassal"), nil
	}
	return binary, err
}

// vassalBinary resolves binary-path, defaulting to our vassal next to this
// executable, then in PATH.
func vassalBinary(configured string) (string, error) {
	if configured != "" {
		if strings.Contains(configured, "/") {
			return configured, nil
		}
		p, err := exec.LookPath(configured)
		if err != nil {
			return "", fmt.Errorf("binary-path %q: %w", configured, err)
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "vassal")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("vassal"); err == nil {
		return p, nil
	}
	return "", errors.New("no vassal binary next to emperor or in PATH: build cmd/vassal or set binary-path")
}
