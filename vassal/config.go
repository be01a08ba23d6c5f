package vassal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

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
// parses the runtime's options. environ's UWSGI_* variables are options
// read before the command line, as in uWSGI; reload says the config is read
// again for a reload (config logic's if-reload). getenv answers $(NAME) and
// if-env; fetch, when not nil, answers emperor://NAME.
func loadSettings(args, environ []string, reload bool, getenv func(string) (string, bool), fetch func(string) ([]byte, error), log *slog.Logger) (Settings, error) {
	l := &config.Loader{
		Env:     config.Env{Getenv: getenv},
		Warn:    func(msg string) { log.Warn("config: " + msg) },
		Emperor: fetch,
		Environ: environ,
		Reload:  reload,
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
			return Settings{}, values(c.Lookup("chdir")).err(fmt.Sprintf("cannot use %s: %v", s.Chdir, err), "")
		case !fi.IsDir():
			return Settings{}, values(c.Lookup("chdir")).err(s.Chdir+" is not a directory", "")
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
