package main

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/monitor"
)

// settings is the Emperor's configuration as read from its command line and
// config files, with uWSGI's option names.
type settings struct {
	emperors        []string
	freq            time.Duration
	binary          string
	vassalSet       []string
	include         []string
	includeBefore   []string
	inherit         []string
	inheritBefore   []string
	reloadMercy     time.Duration
	curseTolerance  time.Duration
	heartbeat       time.Duration
	throttle        time.Duration
	maxThrottle     time.Duration
	noBlacklist     bool
	noFollow        bool
	graceful        bool
	extraExtensions []string
	// Which program each vassal runs, and executable configs (wrapper.go
	// and magicexec.go of package emperor).
	wrapper         string
	wrapperOverride []string
	wrapperFallback []string
	magicExec       bool
	stats           string
	statsHTTP       bool
	metrics         string
	metricsStates   bool // emperor-metrics-per-vassal = false
	maxStarting     int
	throttleBurst   int
	commandSocket   string
	waitForCommand  bool     // emperor-wait-for-command
	waitIgnore      []string // emperor-wait-for-command-ignore
	useClone        string
	tyrant          bool
	// Isolation (issue 7).
	caps             string
	cgroup           string   // "auto" (unset), "on" or "off"
	cgroupLimits     []string // "memory=64M", ... from emperor-cgroup-*
	tyrantInitgroups bool
	tyrantNofollow   bool
	execAsEmperor    []string
	execAsVassal     []string
	hookTimeout      time.Duration
	logFormat        string
	logLevel         string
	help, version    bool
	placeholderNames map[string]bool
	// proc are the options that shape the Emperor process (process.go);
	// notices the lines saying why an option is not acted on (policy.go).
	proc    processSettings
	notices []notice
	// monitors are the settings of each monitor scheme, which the options
	// the schemes registered set.
	monitors monitor.SchemeSettings
	life     lifecycleSettings // its life: log, daemon, pidfiles, touch-reload, hooks (lifecycle.go)
}

// optionTable lists every option the Emperor understands, with uWSGI's
// names and aliases: its own and those the monitor schemes registered.
func (s *settings) optionTable() map[string]config.Setting {
	t := map[string]config.Setting{}
	for _, o := range slices.Concat(s.coreOptions(), s.monitors.Options(), s.proc.options(), s.life.options()) {
		t[o.Name] = o
	}
	alias := func(name, of string) { t[name] = t[of] }
	alias("vassals-set", "vassal-set")
	alias("emperor-stats-server", "emperor-stats")
	alias("emperor-extra-ext", "emperor-extra-extension")
	alias("h", "help")
	alias("vassal-cap", "emperor-cap")
	alias("vassals-cap", "emperor-cap")
	return t
}

// coreOptions are the options of the Emperor itself, setting s.
func (s *settings) coreOptions() []config.Setting {
	var schemes []string
	for _, name := range monitor.Schemes() {
		schemes = append(schemes, name+"://")
	}
	return []config.Setting{
		config.ListSetting("emperor", "a monitor: "+strings.Join(schemes, ", ")+", a directory or a glob (repeatable)", &s.emperors, ""),
		config.ListSetting("dir", "watch a directory of vassal configs (same as --emperor dir://DIR)", &s.emperors, "dir://"),
		config.ListSetting("glob", "watch the configs a glob matches (same as --emperor glob://PATTERN)", &s.emperors, "glob://"),
		config.DurationSetting("emperor-freq", "seconds between safety rescans (default 3)", &s.freq, time.Second),
		config.StringSetting("binary-path", "the vassal binary (default: our vassal; /usr/bin/uwsgi for uWSGI vassals)", &s.binary),
		config.ListSetting("vassal-set", "KEY=VALUE passed to every vassal as --set", &s.vassalSet, ""),
		config.ListSetting("vassals-include", "config included after every vassal's own", &s.include, ""),
		config.ListSetting("vassals-include-before", "config included before every vassal's own", &s.includeBefore, ""),
		config.ListSetting("vassals-inherit", "template every vassal inherits (after its own config)", &s.inherit, ""),
		config.ListSetting("vassals-inherit-before", "template every vassal inherits (before its own config)", &s.inheritBefore, ""),
		config.DurationSetting("reload-mercy", "seconds Ragnarok waits before SIGKILL (default 30)", &s.reloadMercy, time.Second),
		config.DurationSetting("emperor-curse-tolerance", "seconds a stopping vassal may linger before SIGKILL (default 30)", &s.curseTolerance, time.Second),
		config.DurationSetting("emperor-required-heartbeat", "seconds a vassal that sent a heartbeat may stay silent before SIGKILL (default 30)", &s.heartbeat, time.Second),
		config.DurationSetting("emperor-throttle", "ms step of the spawn throttle and of a crash-looping vassal's respawn delay (default 1000)", &s.throttle, time.Millisecond),
		config.DurationSetting("emperor-max-throttle", "ms cap of the throttle level and of the respawn delay (default 180000)", &s.maxThrottle, time.Millisecond),
		config.IntSetting("emperor-throttle-burst", "spawns per throttle wave after the first scan (default: emperor-max-starting; 1: uWSGI's rule; -1: no throttle)", &s.throttleBurst),
		uwsgiFlag("emperor-no-blacklist", "never delay respawns", &s.noBlacklist),
		uwsgiFlag("emperor-nofollow", "do not follow symlinks to configs", &s.noFollow),
		uwsgiFlag("emperor-graceful-shutdown", "stop vassals with byte 2 (graceful) instead of 0", &s.graceful),
		config.ListSetting("emperor-extra-extension", "another config extension (loaded with --config)", &s.extraExtensions, ""),
		config.StringSetting("emperor-wrapper", "the vassal binary, in place of binary-path", &s.wrapper),
		config.ListSetting("emperor-wrapper-override", "vassal binary tried before emperor-wrapper (repeatable; the first that can run runs)", &s.wrapperOverride, ""),
		config.ListSetting("emperor-wrapper-fallback", "vassal binary tried after emperor-wrapper (repeatable)", &s.wrapperFallback, ""),
		uwsgiFlag("emperor-magic-exec", "run an executable vassal config and read the config from its output (exec://)", &s.magicExec),
		config.StringSetting("emperor-use-clone", "namespaces for every vassal: fs,net,ipc,pid,uts,user,cgroup", &s.useClone),
		uwsgiFlag("emperor-tyrant", "run each vassal as the owner of its config (never root)", &s.tyrant),
		config.StringSetting("emperor-cap", "capabilities every vassal keeps, uWSGI names or numbers: setuid,net_bind_service", &s.caps),
		{Name: "emperor-cgroup", Help: "put each vassal in a cgroup of its own: auto (default: wherever the Emperor can make them), true or false (implied by any emperor-cgroup-* limit)", Set: s.setCgroup},
		config.ListSetting("emperor-cgroup-memory", "memory limit of each vassal's cgroup: 64M, 1G", &s.cgroupLimits, "memory="),
		config.ListSetting("emperor-cgroup-pids", "most tasks in each vassal's cgroup", &s.cgroupLimits, "pids="),
		config.ListSetting("emperor-cgroup-cpu-weight", "CPU weight of each vassal's cgroup, 1-10000 (100: default)", &s.cgroupLimits, "cpu-weight="),
		config.ListSetting("emperor-cgroup-cpu-quota", "percent of one CPU each vassal's cgroup may use: 50%, 200%", &s.cgroupLimits, "cpu-quota="),
		uwsgiFlag("emperor-tyrant-initgroups", "tyrant vassals get their owner's supplementary groups", &s.tyrantInitgroups),
		uwsgiFlag("emperor-tyrant-nofollow", "tyrant mode: the owner of a symlink, not of its target, decides", &s.tyrantNofollow),
		config.ListSetting("exec-as-emperor", "shell command the Emperor runs after each spawn (UWSGI_VASSAL_PID, ...)", &s.execAsEmperor, ""),
		config.ListSetting("exec-as-vassal", "shell command run in the vassal's namespaces before its exec", &s.execAsVassal, ""),
		config.DurationSetting("emperor-hook-timeout", "seconds each hook may run (default 30)", &s.hookTimeout, time.Second),
		config.StringSetting("emperor-stats", "stats server: host:port (TCP) or a unix socket path", &s.stats),
		uwsgiFlag("stats-http", "the stats server answers as an HTTP server (headers before the JSON), for curl and browsers", &s.statsHTTP),
		config.StringSetting("emperor-command-socket", "unix socket (mode 0600) for emperor reload/stop/start/blacklist-clear/rescan", &s.commandSocket),
		config.BoolSetting("emperor-wait-for-command", "new vassals stay suspended until `emperor start NAME` (needs emperor-command-socket)", &s.waitForCommand),
		config.ListSetting("emperor-wait-for-command-ignore", "a vassal name that starts at once despite emperor-wait-for-command (repeatable)", &s.waitIgnore, ""),
		config.StringSetting("emperor-metrics", "host:port serving Prometheus metrics at /metrics", &s.metrics),
		{Name: "emperor-metrics-per-vassal", Help: "true (default): a series per vassal in metrics; false: counts by state only, for large fleets", Set: func(v string) error { b, err := config.ParseBool(v); s.metricsStates = err == nil && !b; return err }},
		config.IntSetting("emperor-max-starting", "vassals starting at once (default 4 per CPU; -1: no bound)", &s.maxStarting),
		config.StringSetting("log-format", "text (default) or json", &s.logFormat),
		config.StringSetting("log-level", "debug, info (default), warn or error", &s.logLevel),
		uwsgiFlag("help", "show this help", &s.help),
		uwsgiFlag("version", "show the version", &s.version),
		config.ListSetting("set-placeholder", "KEY=VALUE placeholder for %(KEY)", new([]string), ""),
		config.ListSetting("set-ph", "alias of set-placeholder", new([]string), ""),
	}
}

var placeholderRef = regexp.MustCompile(`%\(([^)\s]+)\)`)

// apply reads a parsed config into s: each option with a Setting is
// applied; the others follow uWSGI's rules, saying why (policy.go): a uWSGI
// option is accepted with a notice, a key that is no uWSGI option is a
// placeholder in a config file (an error in strict mode) and refused on
// the command line.
func (s *settings) apply(c *config.Config, raw *config.Config) error {
	table := s.optionTable()
	// Keys referenced as %(key) anywhere are placeholders, as in uWSGI.
	refs := map[string]bool{}
	for _, o := range raw.Options {
		for _, m := range placeholderRef.FindAllStringSubmatch(o.Value, -1) {
			refs[m[1]] = true
		}
	}
	// strict is immediate in uWSGI: it holds for the whole config.
	strict := false
	for _, o := range c.Options {
		if o.Key == "strict" {
			_ = uwsgiFlag("strict", "", &strict).Set(o.Value)
		}
	}
	for _, o := range c.Options {
		if o.Key == "stats" || o.Key == "stats-server" {
			s.proc.stats = append(s.proc.stats, o) // see processSettings.finish
			continue
		}
		if spec, ok := table[o.Key]; ok {
			if err := config.ApplyOption(spec, o); err != nil {
				return err
			}
			if why, ok := acknowledged[o.Key]; ok {
				s.notices = append(s.notices, notice{opt: o, msg: "option accepted", why: why})
			}
			continue
		}
		if n, ok := classify(o); ok {
			s.notices = append(s.notices, n)
			continue
		}
		n, err := unknownOption(o, strict, refs[o.Key] || s.placeholderNames[o.Key])
		if err != nil {
			return err
		}
		if n != nil {
			s.notices = append(s.notices, *n)
		}
	}
	s.proc.finish(s)
	return nil
}

// usage lists the options for --help.
func (s *settings) usage() string {
	table := s.optionTable()
	names := make([]string, 0, len(table))
	for n := range table {
		if len(n) > 1 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: emperor [--dir DIR | --glob PATTERN | --emperor VALUE]... [--ini emperor.ini] [--OPTION VALUE]...\n\n")
	b.WriteString("Options use uWSGI's names and may also come from --ini/--xml/--yaml/--json files:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  --%-28s %s\n", n, table[n].Help)
	}
	return b.String()
}

// setCgroup reads emperor-cgroup: auto, or a boolean.
func (s *settings) setCgroup(v string) error {
	if strings.EqualFold(strings.TrimSpace(v), "auto") {
		s.cgroup = ""
		return nil
	}
	on, err := config.ParseBool(v)
	if err != nil {
		return &config.Error{Err: fmt.Errorf("%q is neither auto nor a boolean", v), Hint: "use auto, true or false"}
	}
	s.cgroup = "off"
	if on {
		s.cgroup = "on"
	}
	return nil
}
