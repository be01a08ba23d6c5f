// Package vassal is the runtime behind cmd/vassal: it runs an application
// as a vassal of an Emperor (ours or uWSGI's), or standalone.
//
// The vassal reads a uWSGI-style config (see ParseSettings for the options
// it uses; option names follow uWSGI, unknown options are warned about, or
// refused under strict; --config FILE reads FILE by its suffix or, for any
// other suffix such as an emperor-extra-extension's, by its detected
// format; a config named exec://COMMAND is COMMAND's output, as with an
// Emperor's emperor-magic-exec), binds the sockets itself, and runs worker processes
// that receive the sockets with the systemd convention: fds from 3 in config
// order, LISTEN_FDS, LISTEN_PID (the worker's own pid, see ListenExec) and
// LISTEN_FDNAMES, where each socket is named after its option, http-socket
// or socket (uwsgi-socket is a socket; an address cannot be a name: it
// holds ':', the separator). Because the vassal holds the listening sockets,
// they stay open while workers die, are respawned or are replaced on
// reload, and connections wait in the listen queue instead of being refused.
//
// The package is Linux-only: it relies on the parent-death signal, waitid
// and /proc.
//
// # Sockets
//
// http-socket, socket and uwsgi-socket take host:port, :port, [v6]:port, a
// unix socket path, @name (abstract), fd://N (a listening socket the vassal
// inherited on fd N, adopted as is) or =N (the N-th shared-socket, from 0;
// a shared-socket is bound once, when first referred to, and kept until
// the vassal exits, across reloads). Port 0 binds an ephemeral port: the
// "socket bound" log line gives the real address, which the probe uses.
// chmod-socket (bare: 666, or an octal mode) and chown-socket (user[:group],
// names or numbers) apply to the unix socket files the vassal creates;
// reuse-port sets SO_REUSEPORT on TCP sockets; listen sets every queue. A
// listening socket on fd 0 (an on-demand socket) is adopted as one more
// socket, after the configured ones, unless skip-zero is set. A stale unix
// socket file (nothing listens on it) is replaced at bind. With vacuum the
// unix socket files and the pidfiles the vassal created are removed when it
// exits (or, for sockets, when a reload drops them); without it they stay,
// as in uWSGI.
//
// # Protocol
//
// With UWSGI_EMPEROR_FD set, the vassal speaks the Emperor protocol:
//
//   - it sends Spawned (1) once its sockets are bound, before any worker;
//   - it sends Accepting (5) when a generation of workers is ready (see
//     below), at start and after every reload;
//   - it sends Loyal (17) once, after the first generation became ready:
//     loyal = the application answered a request (or notified READY=1);
//   - with heartbeat = N it sends Heartbeat (26) every N s while a worker
//     of the newest generation runs; a worker that has sent WATCHDOG=1
//     over sd_notify counts only while its last WATCHDOG=1 is at most 2N
//     old, so a hung worker stops the heartbeats;
//   - with idle = N and die-on-idle, when no TCP connection to its TCP
//     sockets has been open (ESTABLISHED in /proc/net/tcp{,6}, sampled
//     every second) and none waited in a queue for N s, it sends Voluntary
//     (22), stops its workers and waits for the Emperor's stop byte (it
//     exits 0 at once without an Emperor). Unix sockets cannot be watched:
//     they are ignored (logged once), and with no TCP socket idle is off;
//   - with vassal-sos = N, when the accept queue of a TCP socket has been
//     non-empty for N consecutive seconds, it sends Reinforcements (30), at
//     most once every N s; with vassal-sos-backlog = N, when an accept
//     queue holds N or more connections, it sends 30 at most once every
//     5 s (uWSGI sends it every second, without a limit);
//   - on Stop (0) or GracefulStop (2) it stops its workers (SIGTERM, then
//     SIGKILL after worker-reload-mercy) and its daemons, and exits 0;
//   - on Reload (1) it reads its config again (asking the Emperor for it
//     with ConfigRequest (2) when it came over the config channel), starts a
//     new generation of workers on the same listening sockets, and once one
//     of them is ready stops the old ones, then sends Accepting again;
//   - when the Emperor closes the channel it stops everything and exits 1.
//
// # Readiness
//
// A generation of workers is ready when one of its workers serves a probe,
// sent every 20 ms (after 30 s without success the vassal logs a warning
// and probes less often, up to every 2 s), or when one of its workers sends
// READY=1 over sd_notify, whichever comes first:
//
//   - http-socket: an HTTP GET / to the socket gets an HTTP response, any
//     status;
//   - socket: a worker accepts a TCP connection;
//   - no socket: a worker has been running for 100 ms.
//
// On TCP the vassal sees which process accepted the probe connection (its
// inode in /proc/net/tcp, then the worker holding it), so during a reload an
// answer from an old worker does not count. Where it cannot see that (unix
// sockets), any HTTP response counts, and for socket a successful connect
// once the workers have run for 100 ms.
//
// Every worker gets NOTIFY_SOCKET, a unixgram socket in a private
// directory of the vassal's; the kernel's credentials (SO_PASSCRED) tell
// which worker (or process of its group) sent a message. READY=1 marks it
// ready, WATCHDOG=1 feeds the heartbeat, STATUS= shows in the stats.
//
// # Failures
//
// The vassal exits 1, with one log line naming the vassal and the cause,
// when the config is invalid, a socket cannot be bound (address in use,
// permission, missing directory), the first generation is not ready within
// ready-timeout seconds (default 60; 0 waits forever), or workers fail 5
// times in a row before the vassal was ever ready (the cause quotes the
// last line the worker wrote to stderr, e.g. "exit status 127: sh: 1:
// exec: ./app: not found"). Once it has been ready, a reload that never
// gets ready keeps the old workers serving, and failing workers are
// respawned forever, after a backoff that starts at 100 ms, doubles up to
// 5 s, and starts over once a worker has lived 10 s.
//
// # Signals
//
// SIGHUP reloads gracefully. SIGTERM stops the vassal (die-on-term is
// true by default, as in uWSGI 2.1; this is a deliberate default), or
// reloads gracefully with die-on-term = false, as uWSGI 2.0 did. SIGINT and
// SIGQUIT stop it. A stop exits 0. Callers of Run pass signals through
// Options.Signals; canceling the context stops the vassal.
//
// # Worker recycling
//
// max-worker-lifetime = N replaces a worker older than N s (±10%, per
// worker, so workers do not recycle together); reload-on-rss = MB replaces
// a worker whose VmRSS is larger (checked every 5 s). A replacement starts
// on the same sockets, and the old worker gets SIGTERM only once the
// replacement is ready (a probe it answered, or its READY=1), so no
// connection is dropped; one worker is replaced at a time, and a
// replacement not ready within ready-timeout (60 s when 0) is killed. The
// replacement gets a new worker id.
//
// # Master FIFO
//
// master-fifo = PATH (repeatable, slots 0 to 9, slot 0 active at start) is
// created (mode 0600) when missing and read without blocking the vassal.
// Letters written to the active FIFO: q graceful stop, Q brutal stop
// (SIGKILL), r graceful reload, w the same as r (the vassal has no
// separate "workers only" reload: its reload only replaces workers), R
// brutal reload (the old workers are killed at once, without waiting for
// the new ones), s log the stats document, p pause or resume the workers
// (SIGSTOP/SIGCONT of their process groups: connections wait in the queue),
// B send Reinforcements (30), 0-9 make that slot active. Letters on an
// inactive FIFO and unknown letters are logged and ignored.
//
// # Stats
//
// stats = ADDR (host:port, a unix socket path or @abstract; stats-http
// adds an HTTP/1.0 header) writes one JSON document per connection and
// closes it, in uWSGI's instance schema (`uwsgi --stats`), field for field
// and in its order, then ours: version, listen_queue and load (the longest
// accept queue), listen_queue_errors, signal_queue, pid, uid, gid, cwd,
// daemons (cmd, pid, respawns, then smart and pidfile; absent when none),
// locks, sockets (name: the address, with the port bound for port 0;
// proto: http or uwsgi; queue, max_queue, shared, can_offload; then
// option, network and addr), workers (id, pid, accepting, requests,
// delta_requests, exceptions, harakiri_count, signals, signal_queue,
// status: idle, pause or cheap for a slot with no process; rss and vsz in
// bytes, running_time, last_spawn, respawn_count counting the first start,
// tx, avg_rt, apps, cores; then gen, state: starting, running, stopping,
// or dead while waiting for a respawn; respawns, uptime, notify_status),
// then name, uptime, generation (the newest), ready, loyal, emperor and
// paused. The workers are programs of their own: what only uWSGI's
// request loop knows is 0 or [] (locks, can_offload, listen_queue_errors,
// signal_queue, and per worker requests, delta_requests, exceptions,
// harakiri_count, signals, signal_queue, running_time, tx, avg_rt, apps,
// cores). Each connection is served in its own goroutine with a 4 s write
// deadline.
//
// # Application options
//
// attach-daemon = CMD runs CMD with /bin/sh -c in its own process group,
// respawned with the workers' backoff and stopped with the vassal.
// smart-attach-daemon = PIDFILE CMD runs CMD (which daemonizes and writes
// PIDFILE) whenever the pid in PIDFILE is not alive, checked every second,
// and sends SIGTERM to that pid when the vassal stops. pidfile is written at
// start, pidfile2 after the uid/gid drop. logto appends the vassal's log and
// the workers' and daemons' output to a file (created 0640). uid and gid
// (names or numbers) are applied to the whole vassal after its sockets are
// bound and before any worker or daemon starts; cap (a comma list of names
// or numbers such as net_bind_service,setuid or 10, parsed as emperor-cap
// is, up to the kernel's last capability) keeps those capabilities across
// the drop for the thread that spawns workers, and gives them to the
// workers as ambient capabilities. procname-prefix prefixes the vassal's process name
// (/proc/self/comm) and the argv[0] of workers whose command is plain
// words (exec'd directly instead of through /bin/sh).
// privileged-binary-patch-arg = CMD replaces the vassal, once its sockets
// are bound, with /bin/sh -c "exec CMD": the sockets at fds 3 and up with
// LISTEN_FDS, LISTEN_PID (the same pid) and LISTEN_FDNAMES, the Emperor's
// channels right after them with UWSGI_EMPEROR_FD (and _CONFIG) updated;
// the vassal sends Spawned first and the program owns the rest of the
// protocol. unprivileged-binary-patch-arg does the same after the uid/gid
// drop. Daemons, master-fifo, stats, uid, gid, cap, logto and the binary
// patches are read at start only: a reload does not change them.
package vassal
