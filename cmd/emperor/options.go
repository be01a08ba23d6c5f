package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/config"
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
	pidfile         string
	stats           string
	metrics         string
	maxStarting     int
	throttleBurst   int
	commandSocket   string
	useClone        string
	tyrant          bool
	// Isolation (issue 7).
	caps             string
	cgroup           bool
	cgroupLimits     []string // "memory=64M", ... from emperor-cgroup-*
	tyrantInitgroups bool
	tyrantNofollow   bool
	execAsEmperor    []string
	execAsVassal     []string
	hookTimeout      time.Duration
	// Database monitors (issue 5).
	pgChannel        string
	maxRemovals      int
	logFormat        string
	logLevel         string
	help, version    bool
	ignoredOptions   []config.Option // recognised uWSGI options we do not act on yet
	placeholderNames map[string]bool

	// Push monitors (amqp://, zmq://).
	stateDir         string
	pushAllowedDirs  []string
	pushNamePattern  string
	pushFetchTimeout time.Duration
	amqpExchange     string
}

// optionKind says how an option's value is read.
type optionKind uint8

const (
	kindList optionKind = iota
	kindString
	kindBool
	kindSeconds
	kindMillis
	kindInt
)

type optionSpec struct {
	kind optionKind
	help string
	// set applies a value; exactly one of the typed pointers is used by
	// apply, chosen from kind.
	list *[]string
	str  *string
	flag *bool
	dur  *time.Duration
	num  *int
	// prefix is prepended to each list value (--dir DIR means dir://DIR).
	prefix string
}

// optionTable lists every option the Emperor understands, with uWSGI's
// names and aliases.
func (s *settings) optionTable() map[string]optionSpec {
	t := map[string]optionSpec{
		"emperor":                    {kind: kindList, list: &s.emperors, help: "a monitor: dir://, glob://, pg://, mongodb://, mongodb2://, amqp://, zmq://, a directory or a glob (repeatable)"},
		"dir":                        {kind: kindList, list: &s.emperors, prefix: "dir://", help: "watch a directory of vassal configs (same as --emperor dir://DIR)"},
		"glob":                       {kind: kindList, list: &s.emperors, prefix: "glob://", help: "watch the configs a glob matches (same as --emperor glob://PATTERN)"},
		"emperor-freq":               {kind: kindSeconds, dur: &s.freq, help: "seconds between safety rescans (default 3)"},
		"binary-path":                {kind: kindString, str: &s.binary, help: "the vassal binary (default: our vassal; /usr/bin/uwsgi for uWSGI vassals)"},
		"vassal-set":                 {kind: kindList, list: &s.vassalSet, help: "KEY=VALUE passed to every vassal as --set"},
		"vassals-include":            {kind: kindList, list: &s.include, help: "config included after every vassal's own"},
		"vassals-include-before":     {kind: kindList, list: &s.includeBefore, help: "config included before every vassal's own"},
		"vassals-inherit":            {kind: kindList, list: &s.inherit, help: "template every vassal inherits (after its own config)"},
		"vassals-inherit-before":     {kind: kindList, list: &s.inheritBefore, help: "template every vassal inherits (before its own config)"},
		"reload-mercy":               {kind: kindSeconds, dur: &s.reloadMercy, help: "seconds Ragnarok waits before SIGKILL (default 30)"},
		"emperor-curse-tolerance":    {kind: kindSeconds, dur: &s.curseTolerance, help: "seconds a stopping vassal may linger before SIGKILL (default 30)"},
		"emperor-required-heartbeat": {kind: kindSeconds, dur: &s.heartbeat, help: "seconds a vassal that sent a heartbeat may stay silent before SIGKILL (default 30)"},
		"emperor-throttle":           {kind: kindMillis, dur: &s.throttle, help: "ms step of the spawn throttle and of a crash-looping vassal's respawn delay (default 1000)"},
		"emperor-max-throttle":       {kind: kindMillis, dur: &s.maxThrottle, help: "ms cap of the throttle level and of the respawn delay (default 180000)"},
		"emperor-throttle-burst":     {kind: kindInt, num: &s.throttleBurst, help: "spawns per throttle wave after the first scan (default: emperor-max-starting; 1: uWSGI's rule; -1: no throttle)"},
		"emperor-no-blacklist":       {kind: kindBool, flag: &s.noBlacklist, help: "never delay respawns"},
		"emperor-nofollow":           {kind: kindBool, flag: &s.noFollow, help: "do not follow symlinks to configs"},
		"emperor-graceful-shutdown":  {kind: kindBool, flag: &s.graceful, help: "stop vassals with byte 2 (graceful) instead of 0"},
		"emperor-extra-extension":    {kind: kindList, list: &s.extraExtensions, help: "another config extension (loaded with --config)"},
		"emperor-use-clone":          {kind: kindString, str: &s.useClone, help: "namespaces for every vassal: fs,net,ipc,pid,uts,user,cgroup"},
		"emperor-tyrant":             {kind: kindBool, flag: &s.tyrant, help: "run each vassal as the owner of its config (never root)"},
		"emperor-cap":                {kind: kindString, str: &s.caps, help: "capabilities every vassal keeps, uWSGI names or numbers: setuid,net_bind_service"},
		"emperor-cgroup":             {kind: kindBool, flag: &s.cgroup, help: "put each vassal in a cgroup of its own (implied by any emperor-cgroup-* limit)"},
		"emperor-cgroup-memory":      {kind: kindList, list: &s.cgroupLimits, prefix: "memory=", help: "memory limit of each vassal's cgroup: 64M, 1G"},
		"emperor-cgroup-pids":        {kind: kindList, list: &s.cgroupLimits, prefix: "pids=", help: "most tasks in each vassal's cgroup"},
		"emperor-cgroup-cpu-weight":  {kind: kindList, list: &s.cgroupLimits, prefix: "cpu-weight=", help: "CPU weight of each vassal's cgroup, 1-10000 (100: default)"},
		"emperor-cgroup-cpu-quota":   {kind: kindList, list: &s.cgroupLimits, prefix: "cpu-quota=", help: "percent of one CPU each vassal's cgroup may use: 50%, 200%"},
		"emperor-tyrant-initgroups":  {kind: kindBool, flag: &s.tyrantInitgroups, help: "tyrant vassals get their owner's supplementary groups"},
		"emperor-tyrant-nofollow":    {kind: kindBool, flag: &s.tyrantNofollow, help: "tyrant mode: the owner of a symlink, not of its target, decides"},
		"exec-as-emperor":            {kind: kindList, list: &s.execAsEmperor, help: "shell command the Emperor runs after each spawn (UWSGI_VASSAL_PID, ...)"},
		"exec-as-vassal":             {kind: kindList, list: &s.execAsVassal, help: "shell command run in the vassal's namespaces before its exec"},
		"emperor-hook-timeout":       {kind: kindSeconds, dur: &s.hookTimeout, help: "seconds each hook may run (default 30)"},
		"emperor-pg-channel":         {kind: kindString, str: &s.pgChannel, help: "channel pg:// monitors LISTEN on (default emperor; off: poll only)"},
		"emperor-max-removals":       {kind: kindInt, num: &s.maxRemovals, help: "most vassals one pg:// or mongodb:// scan may remove; a scan wanting more removes none (default 0: no cap)"},
		"emperor-stats":              {kind: kindString, str: &s.stats, help: "stats server: host:port (TCP) or a unix socket path"},
		"emperor-command-socket":     {kind: kindString, str: &s.commandSocket, help: "unix socket (mode 0600) for emperor reload/stop/start/blacklist-clear/rescan"},
		"emperor-metrics":            {kind: kindString, str: &s.metrics, help: "host:port serving Prometheus metrics at /metrics"},
		"emperor-max-starting":       {kind: kindInt, num: &s.maxStarting, help: "vassals starting at once (default 4 per CPU; -1: no bound)"},
		"emperor-pidfile":            {kind: kindString, str: &s.pidfile, help: "write the Emperor's pid to this file"},
		"emperor-state-dir":          {kind: kindString, str: &s.stateDir, help: "directory of the journal that keeps vassals pushed over amqp:// and zmq:// across restarts"},
		"emperor-push-allowed-dir":   {kind: kindList, list: &s.pushAllowedDirs, help: "amqp://, zmq://: accept config paths only under this directory (repeatable)"},
		"emperor-push-name-pattern":  {kind: kindString, str: &s.pushNamePattern, help: "amqp://, zmq://: a regexp every pushed vassal's base name must match in full"},
		"emperor-push-fetch-timeout": {kind: kindSeconds, dur: &s.pushFetchTimeout, help: "amqp://: seconds an http(s) config fetch may take (default 10)"},
		"emperor-amqp-exchange":      {kind: kindString, str: &s.amqpExchange, help: "amqp://: the fanout exchange to bind (default uwsgi.emperor)"},
		"log-format":                 {kind: kindString, str: &s.logFormat, help: "text (default) or json"},
		"log-level":                  {kind: kindString, str: &s.logLevel, help: "debug, info (default), warn or error"},
		"help":                       {kind: kindBool, flag: &s.help, help: "show this help"},
		"version":                    {kind: kindBool, flag: &s.version, help: "show the version"},
		"set-placeholder":            {kind: kindList, list: new([]string), help: "KEY=VALUE placeholder for %(KEY)"},
		"set-ph":                     {kind: kindList, list: new([]string), help: "alias of set-placeholder"},
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

// ignoredUWSGI are uWSGI options an existing emperor.ini may carry that this
// Emperor does not act on (yet); they are logged, never silently dropped.
var ignoredUWSGI = map[string]string{
	"master":               "the Emperor needs no master process",
	"vacuum":               "the Emperor creates no sockets to clean",
	"die-on-term":          "SIGTERM always runs Ragnarok",
	"strict":               "the Emperor's config is always strict",
	"emperor-stats":        "not implemented yet",
	"emperor-stats-server": "not implemented yet",
	"emperor-procname":     "process names are not changed",
	"auto-procname":        "process names are not changed",
	"procname-prefix":      "process names are not changed",
	"memory-report":        "not applicable",
	"logdate":              "log lines always carry a time",
	"log-date":             "log lines always carry a time",
	"thunder-lock":         "not applicable",
	"enable-threads":       "not applicable",
	"plugin":               "the Emperor loads no plugins",
	"plugins":              "the Emperor loads no plugins",
}

var placeholderRef = regexp.MustCompile(`%\(([^)\s]+)\)`)

// apply reads a parsed config into s. Options that name no Emperor setting
// are an error naming file and line, unless they are uWSGI options we
// deliberately ignore or placeholders that another value uses as %(name).
func (s *settings) apply(c *config.Config, raw *config.Config) error {
	table := s.optionTable()
	// Keys referenced as %(key) anywhere are placeholders, as in uWSGI.
	refs := map[string]bool{}
	for _, o := range raw.Options {
		for _, m := range placeholderRef.FindAllStringSubmatch(o.Value, -1) {
			refs[m[1]] = true
		}
	}
	for _, o := range c.Options {
		spec, ok := table[o.Key]
		if !ok {
			if _, ign := ignoredUWSGI[o.Key]; ign {
				s.ignoredOptions = append(s.ignoredOptions, o)
				continue
			}
			if refs[o.Key] {
				continue
			}
			return &config.Error{File: o.File, Line: o.Line, Key: o.Key, Err: fmt.Errorf("unknown option"),
				Hint: "see emperor --help; a placeholder must be used as %(" + o.Key + ")"}
		}
		if err := spec.apply(o); err != nil {
			return err
		}
	}
	return nil
}

func (spec optionSpec) apply(o config.Option) error {
	bad := func(format string, a ...any) error {
		return &config.Error{File: o.File, Line: o.Line, Key: o.Key, Err: fmt.Errorf(format, a...)}
	}
	v := strings.TrimSpace(o.Value)
	switch spec.kind {
	case kindList:
		if v == "" {
			return bad("needs a value")
		}
		*spec.list = append(*spec.list, spec.prefix+v)
	case kindString:
		*spec.str = v
	case kindBool:
		c := config.Config{Options: []config.Option{o}}
		b, err := c.Bool(o.Key)
		if err != nil {
			return err
		}
		*spec.flag = b
	case kindInt:
		n, err := strconv.Atoi(v)
		if err != nil {
			return bad("%q is not an integer", o.Value)
		}
		*spec.num = n
	case kindSeconds, kindMillis:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return bad("%q is not a non-negative integer", o.Value)
		}
		unit := time.Second
		if spec.kind == kindMillis {
			unit = time.Millisecond
		}
		*spec.dur = time.Duration(n) * unit
	}
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
		fmt.Fprintf(&b, "  --%-28s %s\n", n, table[n].help)
	}
	return b.String()
}
