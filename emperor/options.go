package emperor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"time"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/namespaces"
)

// Options configure an Emperor. Field names follow the uWSGI options they
// implement; zero values take uWSGI's defaults (reference 0.4).
type Options struct {
	// Monitors are the configuration sources; their IDs must be unique.
	Monitors []monitor.Monitor
	// Ready is the channel the monitors were given as monitor.Options.Ready:
	// each sends its ID once its first scan is complete. May be nil.
	Ready <-chan string

	// Binary is argv[0] of every vassal (binary-path): our vassal by
	// default, /usr/bin/uwsgi for real uWSGI vassals.
	Binary string
	// Wrapper, when set, replaces Binary (emperor-wrapper). Each spawn
	// runs the first of WrapperOverride, Wrapper (or Binary),
	// WrapperFallback that exists and the vassal's user may execute,
	// looked up in the vassal's PATH when it has no '/' (wrapper.go).
	Wrapper                          string
	WrapperOverride, WrapperFallback []string
	// MagicExec: a config file the vassal's user may read and execute is
	// run, and its output is the config: the vassal gets exec://PATH
	// instead of the file (emperor-magic-exec, magicexec.go).
	MagicExec bool
	// TyrantNoFollow (emperor-tyrant-nofollow, or emperor-nofollow): in
	// tyrant mode a symlinked config runs as the symlink's owner, who must
	// own the file it points to (tyrantfile.go).
	TyrantNoFollow bool
	// ReleaseMemory: a second after the spawn pipeline falls quiet (the
	// initial scan done, a cold start or a flood of configs spawned) the
	// Emperor collects garbage, returns the free heap to the system and,
	// the first time, drops the start-up pages of its program text
	// (memory.go). For a program whose only job is the Emperor: it acts on
	// the whole process.
	ReleaseMemory bool
	// ExtendedFrames lets config frames exceed uWSGI's 64 KiB limit. Only
	// our own vassal reads them; leave it false for uWSGI vassals.
	ExtendedFrames bool

	// VassalSet are "key=value" pairs passed as --set (vassal-set).
	VassalSet []string
	// IncludeBefore, Include, InheritBefore and Inherit are the templates
	// of vassals-include-before, vassals-include, vassals-inherit-before and
	// vassals-inherit.
	IncludeBefore, Include, InheritBefore, Inherit []string
	// Listeners are servers' sockets bound before the Emperor started, by
	// role ("emperor-stats", "emperor-metrics", "emperor-command-socket"),
	// used instead of binding their addresses (an Emperor that drops
	// privileges binds them as root first, as uWSGI does).
	Listeners map[string]net.Listener
	// ExtraExtensions are emperor-extra-extension values.
	ExtraExtensions []string

	// Namespaces are created for every vassal (emperor-use-clone).
	Namespaces namespaces.Set
	// Tyrant runs each vassal as the owner of its config, never as root
	// (emperor-tyrant).
	Tyrant bool
	// TyrantInitgroups gives a tyrant vassal its owner's supplementary
	// groups from the group database (emperor-tyrant-initgroups); without
	// it, or for a uid with no passwd entry, its only group is its gid.
	TyrantInitgroups bool
	// Caps, when LimitCaps, is all a vassal keeps (emperor-cap): bounding,
	// permitted, effective, inheritable and ambient sets.
	LimitCaps bool
	Caps      capabilities.Set
	// Cgroup puts each vassal in a cgroup of its own below the Emperor's,
	// killed as a whole when the vassal stops (emperor-cgroup, implied by
	// any limit). CgroupLimits are the defaults (emperor-cgroup-memory,
	// -pids, -cpu-weight, -cpu-quota); a vassal's [emperor] section may
	// lower them, never raise them.
	Cgroup       bool
	CgroupLimits cgroup.Limits
	// ExecAsEmperor are commands run by the Emperor after each spawn, with
	// UWSGI_VASSAL_CONFIG, _PID, _UID and _GID set, off the loop and
	// bounded by HookTimeout (exec-as-emperor). ExecAsVassal run inside
	// the vassal's new namespaces before exec (exec-as-vassal).
	ExecAsEmperor, ExecAsVassal []string
	// VassalsStartHook and VassalsStopHook are programs run as PROGRAM NAME
	// before each vassal's exec and after each of its deaths
	// (vassals-start-hook, vassals-stop-hook; hooks.go).
	VassalsStartHook, VassalsStopHook string
	// HookTimeout bounds each hook (default 30 s).
	HookTimeout time.Duration

	// GracefulShutdown sends byte 2 instead of 0 to stop a vassal
	// (emperor-graceful-shutdown).
	GracefulShutdown bool
	// ReloadMercy bounds Ragnarok (reload-mercy, default 30 s).
	ReloadMercy time.Duration
	// CurseTolerance is how long a stopping or cursed vassal may linger
	// before SIGKILL, repeated while it survives (emperor-curse-tolerance,
	// default 30 s).
	CurseTolerance time.Duration
	// MaxStarting bounds how many vassals start at once (emperor-max-starting;
	// default 4 per CPU, negative: no bound); StartWindow is how long a
	// vassal that does not speak the protocol counts as starting (default
	// 10 s). See admission.go.
	MaxStarting int
	StartWindow time.Duration
	// RequiredHeartbeat: once a vassal sent its first heartbeat (byte 26), a
	// gap longer than this gets it SIGKILLed and respawned
	// (emperor-required-heartbeat, default 30 s).
	RequiredHeartbeat time.Duration
	// Throttle is the penalty step for a vassal that keeps dying before it
	// became loyal (emperor-throttle, default 1 s); MaxThrottle caps it
	// (emperor-max-throttle, default 180 s).
	Throttle, MaxThrottle time.Duration
	// ThrottleBurst is how many spawns a throttle wave admits within a
	// second while failed spawns hold the throttle level up
	// (emperor-throttle-burst; default MaxStarting, or 4 per CPU; negative:
	// no throttle). See throttle.go.
	ThrottleBurst int
	// StableRun: a process that ran this long before dying clears its
	// vassal's penalty, loyal or not (default 60 s).
	StableRun time.Duration
	// NoBlacklist disables the penalty (emperor-no-blacklist).
	NoBlacklist bool

	// Env is the Emperor's environment, from which every vassal's is derived
	// (default os.Environ()).
	Env []string
	// Stdout and Stderr are inherited by vassals (default the Emperor's).
	Stdout, Stderr *os.File

	// Stats is the address of the stats server (emperor-stats): host:port
	// for TCP, otherwise a unix socket path. Empty: none.
	Stats string
	// StatsHTTP answers stats clients as an HTTP server (stats-http):
	// headers before the JSON, after the client's request.
	StatsHTTP bool
	// Metrics is the host:port serving Prometheus metrics at /metrics
	// (emperor-metrics). Empty: none.
	Metrics string
	// MetricsStatesOnly serves vassals in metrics only as counts by state,
	// without a series per vassal (emperor-metrics-per-vassal = false):
	// for fleets whose per-vassal series are too many to scrape.
	MetricsStatesOnly bool
	// WaitForCommand (emperor-wait-for-command): a vassal whose config
	// appears stays Disabled/Suspended until a start command, except those
	// named in WaitForCommandIgnore (emperor-wait-for-command-ignore, by
	// name as the monitor sees it). Without a CommandSocket nothing could
	// start them: it is ignored then, as uWSGI ignores it.
	WaitForCommand       bool
	WaitForCommandIgnore []string
	// CommandSocket is the path of the command socket
	// (emperor-command-socket), mode 0600. Empty: none.
	CommandSocket string
	// Version is reported in stats.
	Version string

	// NotifySocket is systemd's NOTIFY_SOCKET (Type=notify); empty: none.
	NotifySocket string
	// WatchdogEvery is how often to send WATCHDOG=1 (see WatchdogInterval);
	// 0: never.
	WatchdogEvery time.Duration

	// Signals delivers the Emperor's signals (SIGHUP, SIGUSR1, ...); nil
	// means none. The caller calls signal.Notify; Run never does, so tests
	// can drive it.
	Signals <-chan os.Signal
	// Notify, when set, is called from the Emperor's loop for every
	// transition and every protocol byte. It must not block.
	Notify func(Note)
	// Logger receives one line per decision (default: discard).
	Logger *slog.Logger
	// PanicOnIllegalTransition makes a transition outside the table panic
	// instead of only logging it: tests set it, since such a transition is
	// always a bug.
	PanicOnIllegalTransition bool
}

// Note is one thing that happened to a vassal, for Options.Notify.
type Note struct {
	Key monitor.Key
	// From and To are set for a transition (From == To for a byte).
	From, To State
	// Byte is the protocol byte received, when IsByte.
	Byte   byte
	IsByte bool
	Pid    int
	Reason string
	// Time is when it happened.
	Time time.Time
}

func (o *Options) setDefaults() error {
	if len(o.Monitors) == 0 {
		return errors.New("no monitor: give at least one --emperor (or --dir, --glob)")
	}
	seen := map[string]bool{}
	for _, m := range o.Monitors {
		if seen[m.ID()] {
			return fmt.Errorf("monitor %s given twice", m)
		}
		seen[m.ID()] = true
	}
	if o.Binary == "" && o.Wrapper == "" {
		return errors.New("no vassal binary (binary-path)")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReloadMercy, 30*time.Second)
	def(&o.CurseTolerance, 30*time.Second)
	def(&o.RequiredHeartbeat, 30*time.Second)
	def(&o.StartWindow, 10*time.Second)
	def(&o.StableRun, time.Minute)
	def(&o.HookTimeout, 30*time.Second)
	if !o.CgroupLimits.IsZero() {
		o.Cgroup = true
	}
	if o.Cgroup {
		if _, err := cgroup.Open(); err != nil {
			return fmt.Errorf("emperor-cgroup: %w", err)
		}
	}
	if o.MaxStarting == 0 {
		o.MaxStarting = 4 * runtime.NumCPU()
	}
	if o.ThrottleBurst == 0 {
		o.ThrottleBurst = o.MaxStarting
		if o.ThrottleBurst <= 0 {
			o.ThrottleBurst = 4 * runtime.NumCPU()
		}
	}
	def(&o.Throttle, time.Second)
	def(&o.MaxThrottle, 180*time.Second)
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}
