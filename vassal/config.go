package vassal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/config"
)

// Defaults of the options the runtime reads.
const (
	// DefaultProcesses is the number of workers when processes is not set.
	DefaultProcesses = 1
	// DefaultMercy is worker-reload-mercy when it is not set: how long a
	// worker has to exit after SIGTERM before it gets SIGKILL.
	DefaultMercy = 60 * time.Second
	// DefaultListen is the listen queue of every socket when listen is not
	// set (uWSGI's default).
	DefaultListen = 100
	// DefaultReadyTimeout is ready-timeout when it is not set: how long the
	// first generation of workers has to become ready before the vassal
	// gives up and exits 1.
	DefaultReadyTimeout = 60 * time.Second
)

// SocketKind says which option asked for a socket, and so which protocol
// the workers speak on it.
type SocketKind uint8

// The socket options the runtime binds.
const (
	// HTTPSocket is an http-socket: the workers speak HTTP on it, and the
	// readiness probe sends it an HTTP request.
	HTTPSocket SocketKind = iota + 1
	// RawSocket is a socket: the runtime binds it and hands it over, and
	// the readiness probe only checks that a worker accepts connections.
	RawSocket
)

// String returns the option name of the kind, which is also the name the
// socket gets in LISTEN_FDNAMES.
func (k SocketKind) String() string {
	switch k {
	case HTTPSocket:
		return "http-socket"
	case RawSocket:
		return "socket"
	}
	return fmt.Sprintf("SocketKind(%d)", uint8(k))
}

// SocketSpec is one socket option as the config gave it.
type SocketSpec struct {
	Kind SocketKind
	// Addr is the option value: "host:port", ":port" (every interface),
	// a unix socket path, or "@name" for an abstract unix socket.
	Addr string
	// File and Line say where the option came from, for errors.
	File string
	Line int
	// Shared is N+1 when the option was "=N", a reference to the N-th
	// shared-socket, whose address Addr then holds; 0 otherwise.
	Shared int
}

// Settings is everything the runtime takes from a vassal config. Two
// Settings with equal fields run the same workers.
type Settings struct {
	// Sockets are the http-socket and socket options, in config order.
	Sockets []SocketSpec
	// Exec is the worker-exec command, run with /bin/sh -c.
	Exec string
	// Processes is how many workers run Exec at the same time.
	Processes int
	// Chdir is the workers' working directory ("" = the vassal's).
	Chdir string
	// Env holds the env options, KEY=VALUE, added to the workers'
	// environment in order (a later value of a key wins).
	Env []string
	// Mercy is worker-reload-mercy: the time between SIGTERM and SIGKILL
	// when workers are stopped.
	Mercy time.Duration
	// Listen is the listen queue length of every socket.
	Listen int
	// ReadyTimeout is ready-timeout: how long the first generation has to
	// become ready (0 = forever).
	ReadyTimeout time.Duration
	// DieOnTerm is die-on-term (default true): SIGTERM stops the vassal;
	// false makes SIGTERM a graceful reload, as in uWSGI 2.0.
	DieOnTerm bool
	// Heartbeat is heartbeat: the period of byte 26 (0 = none).
	Heartbeat time.Duration
	// Vacuum is vacuum: remove the unix sockets and pidfiles the vassal
	// created when it exits.
	Vacuum bool
	// ChmodSocket is the mode of the unix socket files (0 = umask's).
	ChmodSocket os.FileMode
	// ReusePort is reuse-port: bind TCP sockets with SO_REUSEPORT.
	ReusePort bool
	// Pidfile is pidfile: where the vassal writes its pid at start.
	Pidfile string
	// ChownSocket is chown-socket: "user[:group]" for the unix socket
	// files ("" = leave them).
	ChownSocket string
	// SkipZero is skip-zero: do not adopt a listening socket on fd 0.
	SkipZero bool
	// Idle is idle: with DieOnIdle, how long without an open TCP
	// connection before the vassal stops (0 = never).
	Idle      time.Duration
	DieOnIdle bool
	// SOS is vassal-sos: send Reinforcements (30) when a TCP socket's
	// accept queue stayed non-empty this long (0 = never).
	SOS time.Duration
	// SOSBacklog is vassal-sos-backlog: send Reinforcements when an
	// accept queue holds at least this many connections (0 = never).
	SOSBacklog int
	// MaxWorkerLifetime is max-worker-lifetime: a worker older than this
	// (±10%) is replaced (0 = never).
	MaxWorkerLifetime time.Duration
	// ReloadOnRSS is reload-on-rss in bytes (the option is in MB): a
	// worker whose RSS is larger is replaced (0 = never).
	ReloadOnRSS uint64
	// MasterFifo are the master-fifo paths, slots 0 to 9; the first is
	// active at start. Read at start only.
	MasterFifo []string
	// Stats is stats (alias stats-server): the stats server's address,
	// host:port or a unix socket path; StatsHTTP is stats-http. Read at
	// start only.
	Stats     string
	StatsHTTP bool
	// Daemons are attach-daemon and smart-attach-daemon, in config
	// order. Read at start only.
	Daemons []DaemonSpec
	// UID and GID are uid and gid (names or numbers): after binding its
	// sockets the vassal drops to them. Caps is cap: capabilities kept
	// across the drop and given to the workers as ambient ones. Pidfile2
	// is written after the drop. All read at start only.
	UID, GID string
	Caps     []uintptr
	Pidfile2 string
	// LogTo is logto: a file the vassal's log and the workers' output are
	// appended to. Read at start only.
	LogTo string
	// ProcnamePrefix is procname-prefix: prefixed to the vassal's process
	// name and to the workers' argv[0] where they are exec'd directly.
	ProcnamePrefix string
	// PrivilegedPatch and UnprivilegedPatch are
	// privileged-binary-patch-arg and unprivileged-binary-patch-arg: a
	// command that replaces the vassal once its sockets are bound (and,
	// for the unprivileged one, after the uid and gid drop).
	PrivilegedPatch, UnprivilegedPatch string
}

// optionRule says how the runtime treats an option it knows.
type optionRule uint8

const (
	// used: the runtime reads the option.
	used optionRule = iota + 1
	// harmless: accepted and ignored, because ignoring it cannot surprise
	// anyone (the runtime already does what it asks, or it only tunes
	// something the runtime does not have).
	harmless
)

// knownOptions is every option the runtime accepts; with strict, any other
// option is an error. The harmless ones are listed with the reason they may
// be ignored.
var knownOptions = map[string]optionRule{
	"http-socket":                   used,
	"socket":                        used,
	"uwsgi-socket":                  used,
	"ready-timeout":                 used,
	"heartbeat":                     used,
	"vacuum":                        used,
	"die-on-term":                   used,
	"chmod-socket":                  used,
	"reuse-port":                    used,
	"pidfile":                       used,
	"shared-socket":                 used,
	"chown-socket":                  used,
	"skip-zero":                     used,
	"idle":                          used,
	"die-on-idle":                   used,
	"vassal-sos":                    used,
	"vassal-sos-backlog":            used,
	"max-worker-lifetime":           used,
	"reload-on-rss":                 used,
	"master-fifo":                   used,
	"stats":                         used,
	"stats-server":                  used,
	"stats-http":                    used,
	"attach-daemon":                 used,
	"smart-attach-daemon":           used,
	"uid":                           used,
	"gid":                           used,
	"cap":                           used,
	"pidfile2":                      used,
	"logto":                         used,
	"procname-prefix":               used,
	"privileged-binary-patch-arg":   used,
	"unprivileged-binary-patch-arg": used,
	"worker-exec":                   used,
	"processes":                     used,
	"workers":                       used, // uWSGI's alias of processes
	"chdir":                         used,
	"env":                           used,
	"worker-reload-mercy":           used,
	"listen":                        used,
	"strict":                        used,
	"master":                        harmless, // the runtime always is a master
	"enable-threads":                harmless, // only for embedded interpreters
	"thunder-lock":                  harmless, // only for uWSGI's own accept loop
	"plugin":                        harmless, // plugins load languages; worker-exec runs any program
	"plugins":                       harmless,
	"need-app":                      harmless, // a worker with no app exits, and is respawned
	"single-interpreter":            harmless, // only for embedded interpreters
	"auto-procname":                 harmless, // cosmetic
	"memory-report":                 harmless, // only changes uWSGI's request logs
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
	if _, err := c.Bool("master"); err != nil {
		return Settings{}, err
	}
	var warned []string
	for _, o := range c.Options {
		if _, ok := knownOptions[o.Key]; ok {
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

	s := Settings{Chdir: last(c, "chdir")}
	var shared []string
	for _, o := range c.Lookup("shared-socket") {
		v := strings.TrimSpace(o.Value)
		if v == "" || strings.HasPrefix(v, "=") {
			return Settings{}, optErr(o, "empty address", "use host:port, :port or a unix socket path")
		}
		shared = append(shared, v)
	}
	for _, o := range c.Options {
		var kind SocketKind
		switch o.Key {
		case "http-socket":
			kind = HTTPSocket
		case "socket", "uwsgi-socket":
			kind = RawSocket
		default:
			continue
		}
		if strings.TrimSpace(o.Value) == "" {
			return Settings{}, optErr(o, "empty address", "use host:port, :port or a unix socket path")
		}
		spec := SocketSpec{Kind: kind, Addr: strings.TrimSpace(o.Value), File: o.File, Line: o.Line}
		if ref, ok := strings.CutPrefix(spec.Addr, "="); ok {
			n, err := strconv.Atoi(ref)
			if err != nil || n < 0 || n >= len(shared) {
				return Settings{}, optErr(o, fmt.Sprintf("%q names no shared-socket", spec.Addr),
					fmt.Sprintf("=N is the N-th shared-socket, from 0; there are %d", len(shared)))
			}
			spec.Addr, spec.Shared = shared[n], n+1
		}
		s.Sockets = append(s.Sockets, spec)
	}

	execs := c.Lookup("worker-exec")
	if len(execs) == 0 || strings.TrimSpace(execs[len(execs)-1].Value) == "" {
		return Settings{}, &config.Error{Key: "worker-exec", Err: errors.New("nothing to run"),
			Hint: "set worker-exec to the command each worker runs"}
	}
	s.Exec = execs[len(execs)-1].Value

	// processes and its alias workers: the last of either wins.
	s.Processes = DefaultProcesses
	for _, o := range c.Options {
		if o.Key != "processes" && o.Key != "workers" {
			continue
		}
		n, err := (&config.Config{Options: []config.Option{o}}).Int(o.Key, DefaultProcesses)
		if err != nil {
			return Settings{}, err
		}
		if n < 1 {
			return Settings{}, optErr(o, fmt.Sprintf("%d workers", n), "run at least 1")
		}
		s.Processes = n
	}

	for _, o := range c.Lookup("env") {
		k, _, ok := strings.Cut(o.Value, "=")
		if !ok || k == "" {
			return Settings{}, optErr(o, fmt.Sprintf("%q is not KEY=VALUE", o.Value), "")
		}
		s.Env = append(s.Env, o.Value)
	}

	mercy, err := c.Int("worker-reload-mercy", int(DefaultMercy/time.Second))
	if err != nil {
		return Settings{}, err
	}
	if mercy < 0 {
		return Settings{}, lastErr(c, "worker-reload-mercy", "negative", "0 means SIGKILL right after SIGTERM")
	}
	s.Mercy = time.Duration(mercy) * time.Second

	s.Listen, err = c.Int("listen", DefaultListen)
	if err != nil {
		return Settings{}, err
	}
	if s.Listen < 1 {
		return Settings{}, lastErr(c, "listen", "must be at least 1", "")
	}
	if s.ReadyTimeout, err = seconds(c, "ready-timeout", DefaultReadyTimeout); err != nil {
		return Settings{}, err
	}
	if s.Heartbeat, err = seconds(c, "heartbeat", 0); err != nil {
		return Settings{}, err
	}
	if s.Vacuum, err = c.Bool("vacuum"); err != nil {
		return Settings{}, err
	}
	if s.ReusePort, err = c.Bool("reuse-port"); err != nil {
		return Settings{}, err
	}
	s.DieOnTerm = true
	if _, ok := c.Get("die-on-term"); ok {
		if s.DieOnTerm, err = c.Bool("die-on-term"); err != nil {
			return Settings{}, err
		}
	}
	if v, ok := c.Get("chmod-socket"); ok {
		v = strings.TrimSpace(v)
		if v == "" {
			s.ChmodSocket = 0o666 // a bare flag, as in uWSGI
		} else {
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m == 0 || m > 0o777 {
				return Settings{}, lastErr(c, "chmod-socket", fmt.Sprintf("%q is not an octal mode", v), "use e.g. 660, or the bare flag for 666")
			}
			s.ChmodSocket = os.FileMode(m)
		}
	}
	s.Pidfile = strings.TrimSpace(last(c, "pidfile"))
	s.ChownSocket = strings.TrimSpace(last(c, "chown-socket"))
	if s.SkipZero, err = c.Bool("skip-zero"); err != nil {
		return Settings{}, err
	}
	if s.Idle, err = seconds(c, "idle", 0); err != nil {
		return Settings{}, err
	}
	if s.DieOnIdle, err = c.Bool("die-on-idle"); err != nil {
		return Settings{}, err
	}
	if s.SOS, err = seconds(c, "vassal-sos", 0); err != nil {
		return Settings{}, err
	}
	if s.SOSBacklog, err = c.Int("vassal-sos-backlog", 0); err != nil {
		return Settings{}, err
	}
	if s.MaxWorkerLifetime, err = seconds(c, "max-worker-lifetime", 0); err != nil {
		return Settings{}, err
	}
	rss, err := c.Int("reload-on-rss", 0)
	if err != nil {
		return Settings{}, err
	}
	if rss < 0 {
		return Settings{}, lastErr(c, "reload-on-rss", "negative", "give megabytes, 0 disables it")
	}
	s.ReloadOnRSS = uint64(rss) << 20
	for _, o := range c.Lookup("master-fifo") {
		if strings.TrimSpace(o.Value) == "" {
			return Settings{}, optErr(o, "empty path", "")
		}
		if len(s.MasterFifo) == maxFifos {
			return Settings{}, optErr(o, fmt.Sprintf("more than %d master-fifo", maxFifos), "the slots are 0 to 9")
		}
		s.MasterFifo = append(s.MasterFifo, strings.TrimSpace(o.Value))
	}
	for _, o := range c.Options {
		if o.Key == "stats" || o.Key == "stats-server" {
			s.Stats = strings.TrimSpace(o.Value)
		}
	}
	if s.StatsHTTP, err = c.Bool("stats-http"); err != nil {
		return Settings{}, err
	}
	s.UID, s.GID = strings.TrimSpace(last(c, "uid")), strings.TrimSpace(last(c, "gid"))
	for _, o := range c.Lookup("cap") {
		if strings.TrimSpace(o.Value) == "" {
			continue
		}
		caps, err := capabilities.ParseList(o.Value)
		if err != nil {
			return Settings{}, optErr(o, err.Error(), "use names such as net_bind_service,setuid, or numbers")
		}
		for _, c := range caps {
			s.Caps = append(s.Caps, uintptr(c))
		}
	}
	s.Pidfile2 = strings.TrimSpace(last(c, "pidfile2"))
	s.LogTo = strings.TrimSpace(last(c, "logto"))
	s.ProcnamePrefix = last(c, "procname-prefix")
	s.PrivilegedPatch = strings.TrimSpace(last(c, "privileged-binary-patch-arg"))
	s.UnprivilegedPatch = strings.TrimSpace(last(c, "unprivileged-binary-patch-arg"))
	for _, o := range c.Options {
		switch o.Key {
		case "attach-daemon":
			if strings.TrimSpace(o.Value) == "" {
				return Settings{}, optErr(o, "empty command", "")
			}
			s.Daemons = append(s.Daemons, DaemonSpec{Command: o.Value})
		case "smart-attach-daemon":
			d, err := parseSmartDaemon(o.Value)
			if err != nil {
				return Settings{}, optErr(o, err.Error(), "the pidfile comes first, then the command")
			}
			s.Daemons = append(s.Daemons, d)
		}
	}
	if s.SOSBacklog < 0 {
		return Settings{}, lastErr(c, "vassal-sos-backlog", "negative", "0 disables it")
	}
	return s, nil
}

// seconds reads key as a non-negative number of seconds.
func seconds(c *config.Config, key string, def time.Duration) (time.Duration, error) {
	n, err := c.Int(key, int(def/time.Second))
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, lastErr(c, key, "negative", "give a number of seconds, 0 to disable")
	}
	return time.Duration(n) * time.Second, nil
}

// last returns the last value of key, or "".
func last(c *config.Config, key string) string {
	v, _ := c.Get(key)
	return v
}

// optErr is an invalid value of option o.
func optErr(o config.Option, msg, hint string) error {
	return &config.Error{File: o.File, Line: o.Line, Key: o.Key, Err: errors.New(msg), Hint: hint}
}

// lastErr is an invalid value of the last option named key.
func lastErr(c *config.Config, key, msg, hint string) error {
	opts := c.Lookup(key)
	return optErr(opts[len(opts)-1], msg, hint)
}

// NameOf returns the name of the vassal a command line runs, for logs: the
// base name of the first config its --ini, --xml, --yaml or --json loads
// ("app.ini" for --ini
// /etc/vassals/app.ini, "app.ini" for --ini emperor://app.ini), or "vassal"
// when it loads none.
func NameOf(args []string) string {
	for i, a := range args {
		name, value, inline := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") {
			continue
		}
		if _, ok := config.FormatFlag(name); !ok {
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				continue
			}
			value = args[i+1]
		}
		value = strings.TrimPrefix(value, "emperor://")
		if value == "" {
			continue
		}
		return filepath.Base(value)
	}
	return "vassal"
}

// loadSettings reads the config a command line names, resolves it and
// parses the runtime's options. getenv answers $(NAME); fetch, when not
// nil, answers emperor://NAME.
func loadSettings(args []string, getenv func(string) (string, bool), fetch func(string) ([]byte, error), log *slog.Logger) (Settings, error) {
	l := &config.Loader{
		Env:     config.Env{Getenv: getenv},
		Warn:    func(msg string) { log.Warn("config: " + msg) },
		Emperor: fetch,
	}
	c, err := l.Args(args)
	if err != nil {
		return Settings{}, err
	}
	if err := c.Resolve(l); err != nil {
		return Settings{}, err
	}
	s, err := ParseSettings(c, func(o config.Option) {
		log.Warn("unknown option ignored", "option", o.Key, "at", where(o.File, o.Line))
	})
	if err != nil {
		return Settings{}, err
	}
	if !s.SkipZero && isListening(0) {
		// As uWSGI: a listening socket on fd 0 (an Emperor's on-demand
		// socket, inetd-style spawners) is one more socket.
		log.Info("adopting the listening socket inherited on fd 0", "skip", "set skip-zero to leave it")
		s.Sockets = append(s.Sockets, SocketSpec{Kind: RawSocket, Addr: "fd://0", File: "inherited fd 0"})
	}
	if s.Chdir != "" {
		// Refuse it now rather than failing every worker start.
		fi, err := os.Stat(s.Chdir)
		switch {
		case err != nil:
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return Settings{}, lastErr(c, "chdir", fmt.Sprintf("cannot use %s: %v", s.Chdir, err), "")
		case !fi.IsDir():
			return Settings{}, lastErr(c, "chdir", s.Chdir+" is not a directory", "")
		}
	}
	return s, nil
}

// where formats a config position as "file:line", "file" or "command line".
func where(file string, line int) string {
	switch {
	case file == "":
		return "command line"
	case line > 0:
		return fmt.Sprintf("%s:%d", file, line)
	}
	return file
}
