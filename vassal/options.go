package vassal

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/config"
)

// option is one entry of the runtime's option table: the names it answers
// to (an option and its aliases, read together: where one value counts, the
// last occurrence of any of them wins), what it does, and how it is read
// into Settings. An entry without parse is accepted and not read; its doc
// says why ignoring it cannot surprise anyone.
type option struct {
	names []string
	doc   string
	parse func(v values, s *Settings) error
}

// options is every option the runtime accepts, in the order they are
// read; with strict, any other option is an error.
var options = []option{
	{names: []string{"strict"}, doc: "refuse unknown options (read first, by ParseSettings)"},
	{names: []string{"master"}, doc: "ignored: the runtime always is a master", parse: func(v values, _ *Settings) error {
		_, err := v.boolean(false)
		return err
	}},
	{names: []string{"chdir"}, doc: "the workers' working directory", parse: func(v values, s *Settings) error {
		s.Chdir = v.raw()
		return nil
	}},
	{names: []string{"shared-socket", "http-socket", "socket", "uwsgi-socket"}, doc: "the sockets, bound by the vassal", parse: parseSockets},
	{names: []string{"worker-exec"}, doc: "the command each worker runs", parse: func(v values, s *Settings) error {
		if strings.TrimSpace(v.raw()) == "" {
			return &config.Error{Key: "worker-exec", Err: errors.New("nothing to run"),
				Hint: "set worker-exec to the command each worker runs"}
		}
		s.Exec = v.raw()
		return nil
	}},
	{names: []string{"processes", "workers"}, doc: "how many workers (workers is uWSGI's alias)", parse: func(v values, s *Settings) error {
		s.Processes = DefaultProcesses
		for _, o := range v {
			n, err := values{o}.integer(DefaultProcesses)
			if err != nil {
				return err
			}
			if n < 1 {
				return optErr(o, fmt.Sprintf("%d workers", n), "run at least 1")
			}
			s.Processes = n
		}
		return nil
	}},
	{names: []string{"env"}, doc: "KEY=VALUE added to the workers' environment", parse: func(v values, s *Settings) error {
		for _, o := range v {
			if k, _, ok := strings.Cut(o.Value, "="); !ok || k == "" {
				return optErr(o, fmt.Sprintf("%q is not KEY=VALUE", o.Value), "")
			}
			s.Env = append(s.Env, o.Value)
		}
		return nil
	}},
	{names: []string{"worker-reload-mercy"}, doc: "seconds between SIGTERM and SIGKILL", parse: func(v values, s *Settings) error {
		mercy, err := v.integer(int(DefaultMercy / time.Second))
		if err != nil {
			return err
		}
		if mercy < 0 {
			return v.err("negative", "0 means SIGKILL right after SIGTERM")
		}
		s.Mercy = time.Duration(mercy) * time.Second
		return nil
	}},
	{names: []string{"listen"}, doc: "every socket's listen queue", parse: func(v values, s *Settings) (err error) {
		if s.Listen, err = v.integer(DefaultListen); err == nil && s.Listen < 1 {
			err = v.err("must be at least 1", "")
		}
		return err
	}},
	{names: []string{"ready-timeout"}, doc: "seconds the first workers have to become ready", parse: setSeconds(DefaultReadyTimeout, func(s *Settings) *time.Duration { return &s.ReadyTimeout })},
	{names: []string{"heartbeat"}, doc: "seconds between heartbeats to the Emperor", parse: setSeconds(0, func(s *Settings) *time.Duration { return &s.Heartbeat })},
	{names: []string{"vacuum"}, doc: "remove created sockets and pidfiles at exit", parse: setBool(false, func(s *Settings) *bool { return &s.Vacuum })},
	{names: []string{"reuse-port"}, doc: "SO_REUSEPORT on TCP sockets", parse: setBool(false, func(s *Settings) *bool { return &s.ReusePort })},
	{names: []string{"die-on-term"}, doc: "SIGTERM stops (default) or reloads", parse: setBool(true, func(s *Settings) *bool { return &s.DieOnTerm })},
	{names: []string{"chmod-socket"}, doc: "mode of the unix socket files", parse: parseChmod},
	{names: []string{"pidfile"}, doc: "pid written at start", parse: setTrimmed(func(s *Settings) *string { return &s.Pidfile })},
	{names: []string{"chown-socket"}, doc: "user[:group] of the unix socket files", parse: setTrimmed(func(s *Settings) *string { return &s.ChownSocket })},
	{names: []string{"skip-zero"}, doc: "do not adopt a listening socket on fd 0", parse: setBool(false, func(s *Settings) *bool { return &s.SkipZero })},
	{names: []string{"idle"}, doc: "seconds without a connection before die-on-idle stops", parse: setSeconds(0, func(s *Settings) *time.Duration { return &s.Idle })},
	{names: []string{"die-on-idle"}, doc: "stop once idle", parse: setBool(false, func(s *Settings) *bool { return &s.DieOnIdle })},
	{names: []string{"vassal-sos"}, doc: "seconds of a non-empty accept queue before asking for reinforcements", parse: setSeconds(0, func(s *Settings) *time.Duration { return &s.SOS })},
	{names: []string{"vassal-sos-backlog"}, doc: "queued connections that ask for reinforcements", parse: func(v values, s *Settings) (err error) {
		if s.SOSBacklog, err = v.integer(0); err == nil && s.SOSBacklog < 0 {
			err = v.err("negative", "0 disables it")
		}
		return err
	}},
	{names: []string{"max-worker-lifetime"}, doc: "seconds after which a worker is replaced", parse: setSeconds(0, func(s *Settings) *time.Duration { return &s.MaxWorkerLifetime })},
	{names: []string{"reload-on-rss"}, doc: "megabytes of RSS after which a worker is replaced", parse: func(v values, s *Settings) error {
		rss, err := v.integer(0)
		if err != nil {
			return err
		}
		if rss < 0 {
			return v.err("negative", "give megabytes, 0 disables it")
		}
		s.ReloadOnRSS = uint64(rss) << 20
		return nil
	}},
	{names: []string{"master-fifo"}, doc: "master FIFO paths, slots 0 to 9", parse: func(v values, s *Settings) error {
		for _, o := range v {
			if strings.TrimSpace(o.Value) == "" {
				return optErr(o, "empty path", "")
			}
			if len(s.MasterFifo) == maxFifos {
				return optErr(o, fmt.Sprintf("more than %d master-fifo", maxFifos), "the slots are 0 to 9")
			}
			s.MasterFifo = append(s.MasterFifo, strings.TrimSpace(o.Value))
		}
		return nil
	}},
	{names: []string{"stats", "stats-server"}, doc: "the stats server's address", parse: setTrimmed(func(s *Settings) *string { return &s.Stats })},
	{names: []string{"stats-http"}, doc: "the stats server speaks HTTP", parse: setBool(false, func(s *Settings) *bool { return &s.StatsHTTP })},
	{names: []string{"uid"}, doc: "user to drop to after binding", parse: setTrimmed(func(s *Settings) *string { return &s.UID })},
	{names: []string{"gid"}, doc: "group to drop to after binding", parse: setTrimmed(func(s *Settings) *string { return &s.GID })},
	{names: []string{"cap"}, doc: "capabilities kept across the drop, ambient in workers", parse: func(v values, s *Settings) error {
		for _, o := range v {
			if strings.TrimSpace(o.Value) == "" {
				continue
			}
			caps, err := capabilities.ParseList(o.Value)
			if err != nil {
				return optErr(o, err.Error(), "use names such as net_bind_service,setuid, or numbers")
			}
			for _, c := range caps {
				s.Caps = append(s.Caps, uintptr(c))
			}
		}
		return nil
	}},
	{names: []string{"pidfile2"}, doc: "pid written after the drop", parse: setTrimmed(func(s *Settings) *string { return &s.Pidfile2 })},
	{names: []string{"logto"}, doc: "file the logs and the workers' output go to", parse: setTrimmed(func(s *Settings) *string { return &s.LogTo })},
	{names: []string{"procname-prefix"}, doc: "prefix of the process names", parse: func(v values, s *Settings) error {
		s.ProcnamePrefix = v.raw()
		return nil
	}},
	{names: []string{"privileged-binary-patch-arg"}, doc: "command replacing the vassal once bound", parse: setTrimmed(func(s *Settings) *string { return &s.PrivilegedPatch })},
	{names: []string{"unprivileged-binary-patch-arg"}, doc: "command replacing the vassal after the drop", parse: setTrimmed(func(s *Settings) *string { return &s.UnprivilegedPatch })},
	{names: []string{"attach-daemon", "smart-attach-daemon"}, doc: "daemons run next to the workers", parse: parseDaemons},
	{names: []string{"enable-threads"}, doc: "ignored: only for embedded interpreters"},
	{names: []string{"thunder-lock"}, doc: "ignored: only for uWSGI's own accept loop"},
	{names: []string{"plugin", "plugins"}, doc: "ignored: plugins load languages; worker-exec runs any program"},
	{names: []string{"need-app"}, doc: "ignored: a worker with no app exits, and is respawned"},
	{names: []string{"single-interpreter"}, doc: "ignored: only for embedded interpreters"},
	{names: []string{"auto-procname"}, doc: "ignored: cosmetic"},
	{names: []string{"memory-report"}, doc: "ignored: only changes uWSGI's request logs"},
}

// knownOption reports whether the runtime accepts the option key.
func knownOption(key string) bool {
	return slices.ContainsFunc(options, func(o option) bool { return slices.Contains(o.names, key) })
}

// ParseSettings reads the options the runtime uses from a loaded and
// resolved config. Options it does not know are passed to warn, or, when
// the config sets strict, refused with a *config.Error naming their file
// and line. Every invalid value is a *config.Error too.
func ParseSettings(c *config.Config, warn func(o config.Option)) (Settings, error) {
	strict, err := c.Bool("strict")
	if err != nil {
		return Settings{}, err
	}
	var warned []string
	for _, o := range c.Options {
		if knownOption(o.Key) {
			continue
		}
		if strict {
			return Settings{}, &config.Error{File: o.File, Line: o.Line, Key: o.Key,
				Err:  errors.New("unknown option"),
				Hint: "strict mode refuses options the vassal runtime does not implement"}
		}
		if warn != nil && !slices.Contains(warned, o.Key) {
			warned = append(warned, o.Key)
			warn(o)
		}
	}
	var s Settings
	for _, opt := range options {
		if opt.parse == nil {
			continue
		}
		var v values
		for _, o := range c.Options {
			if slices.Contains(opt.names, o.Key) {
				v = append(v, o)
			}
		}
		if err := opt.parse(v, &s); err != nil {
			return Settings{}, err
		}
	}
	return s, nil
}

// parseSockets reads http-socket, socket and uwsgi-socket in config order,
// resolving =N against the shared-socket options.
func parseSockets(v values, s *Settings) error {
	var shared []string
	for _, o := range v {
		if o.Key != "shared-socket" {
			continue
		}
		a := strings.TrimSpace(o.Value)
		if a == "" || strings.HasPrefix(a, "=") {
			return optErr(o, "empty address", "use host:port, :port or a unix socket path")
		}
		shared = append(shared, a)
	}
	for _, o := range v {
		kind := RawSocket
		switch o.Key {
		case "shared-socket":
			continue
		case "http-socket":
			kind = HTTPSocket
		}
		if strings.TrimSpace(o.Value) == "" {
			return optErr(o, "empty address", "use host:port, :port or a unix socket path")
		}
		spec := SocketSpec{Kind: kind, Addr: strings.TrimSpace(o.Value), File: o.File, Line: o.Line}
		if ref, ok := strings.CutPrefix(spec.Addr, "="); ok {
			n, err := strconv.Atoi(ref)
			if err != nil || n < 0 || n >= len(shared) {
				return optErr(o, fmt.Sprintf("%q names no shared-socket", spec.Addr),
					fmt.Sprintf("=N is the N-th shared-socket, from 0; there are %d", len(shared)))
			}
			spec.Addr, spec.Shared = shared[n], n+1
		}
		s.Sockets = append(s.Sockets, spec)
	}
	return nil
}

// parseChmod reads chmod-socket: an octal mode, or 666 for the bare flag.
func parseChmod(v values, s *Settings) error {
	o, ok := v.last()
	if !ok {
		return nil
	}
	m := strings.TrimSpace(o.Value)
	if m == "" {
		s.ChmodSocket = 0o666 // a bare flag, as in uWSGI
		return nil
	}
	n, err := strconv.ParseUint(m, 8, 32)
	if err != nil || n == 0 || n > 0o777 {
		return optErr(o, fmt.Sprintf("%q is not an octal mode", m), "use e.g. 660, or the bare flag for 666")
	}
	s.ChmodSocket = os.FileMode(n)
	return nil
}

// parseDaemons reads attach-daemon and smart-attach-daemon in config order.
func parseDaemons(v values, s *Settings) error {
	for _, o := range v {
		if o.Key == "attach-daemon" {
			if strings.TrimSpace(o.Value) == "" {
				return optErr(o, "empty command", "")
			}
			s.Daemons = append(s.Daemons, DaemonSpec{Command: o.Value})
			continue
		}
		d, err := parseSmartDaemon(o.Value)
		if err != nil {
			return optErr(o, err.Error(), "the pidfile comes first, then the command")
		}
		s.Daemons = append(s.Daemons, d)
	}
	return nil
}

// setBool, setSeconds and setTrimmed are parse functions that store the
// last value (boolean, seconds, or the string trimmed) in the field f
// returns, or def when the option is absent.
func setBool(def bool, f func(*Settings) *bool) func(values, *Settings) error {
	return func(v values, s *Settings) (err error) {
		*f(s), err = v.boolean(def)
		return err
	}
}

func setSeconds(def time.Duration, f func(*Settings) *time.Duration) func(values, *Settings) error {
	return func(v values, s *Settings) (err error) {
		*f(s), err = v.seconds(def)
		return err
	}
}

func setTrimmed(f func(*Settings) *string) func(values, *Settings) error {
	return func(v values, s *Settings) error {
		*f(s) = v.trimmed()
		return nil
	}
}

// values are the occurrences of one table entry's names in a config, in
// config order.
type values []config.Option

// last returns the last occurrence.
func (v values) last() (config.Option, bool) {
	if len(v) == 0 {
		return config.Option{}, false
	}
	return v[len(v)-1], true
}

// raw returns the last value as written, or "".
func (v values) raw() string {
	o, _ := v.last()
	return o.Value
}

// trimmed returns the last value without surrounding spaces, or "".
func (v values) trimmed() string { return strings.TrimSpace(v.raw()) }

// boolean reads the last value as config.Config.Bool does; def when
// absent.
func (v values) boolean(def bool) (bool, error) {
	o, ok := v.last()
	if !ok {
		return def, nil
	}
	return (&config.Config{Options: []config.Option{o}}).Bool(o.Key)
}

// integer reads the last value as config.Config.Int does; def when
// absent.
func (v values) integer(def int) (int, error) {
	o, ok := v.last()
	if !ok {
		return def, nil
	}
	return (&config.Config{Options: []config.Option{o}}).Int(o.Key, def)
}

// seconds reads the last value as a non-negative number of seconds.
func (v values) seconds(def time.Duration) (time.Duration, error) {
	n, err := v.integer(int(def / time.Second))
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, v.err("negative", "give a number of seconds, 0 to disable")
	}
	return time.Duration(n) * time.Second, nil
}

// err is an invalid value of the last occurrence.
func (v values) err(msg, hint string) error {
	o, _ := v.last()
	return optErr(o, msg, hint)
}

// optErr is an invalid value of option o.
func optErr(o config.Option, msg, hint string) error {
	return &config.Error{File: o.File, Line: o.Line, Key: o.Key, Err: errors.New(msg), Hint: hint}
}
