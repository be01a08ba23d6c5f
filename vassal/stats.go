package vassal

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// statsWriteTimeout bounds the write of one stats document.
const statsWriteTimeout = 4 * time.Second

// statsDocument is what the stats server writes (see the package doc):
// uWSGI 2.0's instance stats (`uwsgi --stats`), field for field and in its
// order, so tools written for them read ours, followed by our own fields.
// Where we do not have uWSGI's figure the value is its neutral one (0, "",
// []); the package doc lists which.
type statsDocument struct {
	Version           string `json:"version"`
	ListenQueue       uint64 `json:"listen_queue"`        // the longest accept queue of the sockets, as uWSGI
	ListenQueueErrors uint64 `json:"listen_queue_errors"` // 0: not counted
	SignalQueue       int    `json:"signal_queue"`        // 0: no uWSGI signals
	Load              uint64 `json:"load"`                // uWSGI's load is its listen_queue
	Pid               int    `json:"pid"`
	UID               int    `json:"uid"`
	GID               int    `json:"gid"`
	Cwd               string `json:"cwd"`
	// Daemons (attach-daemon): uWSGI's cmd, pid, respawns, then ours;
	// absent when there is none, as in uWSGI.
	Daemons []statsDaemon    `json:"daemons,omitempty"`
	Locks   []map[string]int `json:"locks"` // []: no uWSGI locks
	Sockets []statsSocket    `json:"sockets"`
	Workers []statsWorker    `json:"workers"`

	// Ours.
	Name       string         `json:"name"`
	Uptime     int64          `json:"uptime"`
	Generation int            `json:"generation"`
	Ready      bool           `json:"ready"`
	Loyal      bool           `json:"loyal"`
	Emperor    bool           `json:"emperor"`
	Paused     bool           `json:"paused"`
	locals     []*net.TCPAddr // per socket, nil for unix: for fillQueues
}

// statsSocket is one socket: uWSGI's fields, then ours.
type statsSocket struct {
	Name       string `json:"name"`  // the address as configured, with the port bound for port 0
	Proto      string `json:"proto"` // "http" for http-socket, "uwsgi" for socket, as uWSGI
	Queue      uint64 `json:"queue"` // its accept queue (TCP sockets; 0 for unix ones)
	MaxQueue   int    `json:"max_queue"`
	Shared     int    `json:"shared"`      // 1 for a socket of shared-socket (=N)
	CanOffload int    `json:"can_offload"` // 0: no offloading

	// Ours.
	Option  string `json:"option"`  // http-socket or socket
	Network string `json:"network"` // tcp or unix
	Addr    string `json:"addr"`    // where a client connects
}

// statsWorker is one worker: uWSGI's fields, then ours. The workers are
// programs of their own (worker-exec), so the runtime does not see their
// requests: those figures are 0.
type statsWorker struct {
	ID            int    `json:"id"`
	Pid           int    `json:"pid"`
	Accepting     int    `json:"accepting"` // 1 while running, ready and not paused
	Requests      uint64 `json:"requests"`
	DeltaRequests uint64 `json:"delta_requests"`
	Exceptions    uint64 `json:"exceptions"`
	HarakiriCount uint64 `json:"harakiri_count"`
	Signals       uint64 `json:"signals"`
	SignalQueue   int    `json:"signal_queue"`
	// Status is uWSGI's word: "idle" for a running worker (we cannot tell
	// a busy one), "pause" while the vassal is paused, "cheap" for a slot
	// with no process (dead, waiting for its respawn).
	Status       string     `json:"status"`
	RSS          uint64     `json:"rss"` // bytes
	VSZ          uint64     `json:"vsz"` // bytes
	RunningTime  uint64     `json:"running_time"`
	LastSpawn    int64      `json:"last_spawn"`    // UNIX seconds of its latest start
	RespawnCount int        `json:"respawn_count"` // starts of the slot, the first included, as uWSGI
	TX           uint64     `json:"tx"`
	AvgRT        uint64     `json:"avg_rt"`
	Apps         []struct{} `json:"apps"`  // []: no uWSGI apps
	Cores        []struct{} `json:"cores"` // []: no uWSGI cores

	// Ours.
	Gen          int    `json:"gen"`
	State        string `json:"state"`    // starting, running, stopping, or dead while waiting for a respawn
	Respawns     int    `json:"respawns"` // starts after the first
	Uptime       int64  `json:"uptime"`
	NotifyStatus string `json:"notify_status"`
}

// statsDaemon is one attach-daemon: uWSGI's fields, then ours.
type statsDaemon struct {
	Cmd      string `json:"cmd"`
	Pid      int    `json:"pid"`
	Respawns int    `json:"respawns"`
	Smart    bool   `json:"smart"`
	Pidfile  string `json:"pidfile,omitempty"`
}

// version names the build of the vassal binary.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// statsDoc builds the document from the loop's state; fillQueues adds the
// accept queues, outside the loop.
func (r *runner) statsDoc() *statsDocument {
	cwd, _ := os.Getwd()
	d := &statsDocument{
		Version: version(), Pid: os.Getpid(), UID: os.Getuid(), GID: os.Getgid(), Cwd: cwd,
		Locks: []map[string]int{}, Sockets: []statsSocket{}, Workers: []statsWorker{},
		Name: r.name, Uptime: int64(time.Since(r.started) / time.Second),
		Loyal: r.loyal, Emperor: r.em != nil, Paused: r.paused,
	}
	if n := len(r.gens); n > 0 {
		g := r.gens[n-1]
		d.Generation, d.Ready = g.id, g.ready
		for _, l := range g.sockets {
			d.Sockets = append(d.Sockets, socketStats(l))
			d.locals = append(d.locals, l.local)
		}
	}
	for _, g := range r.gens {
		for _, w := range g.workers {
			d.Workers = append(d.Workers, r.workerStats(g, w))
		}
	}
	d.Daemons = r.daemonStats()
	return d
}

// socketStats describes one socket as uWSGI does.
func socketStats(l *listener) statsSocket {
	s := statsSocket{Name: l.spec.Addr, Proto: "uwsgi", MaxQueue: l.backlog,
		Option: l.spec.Kind.String(), Network: l.network, Addr: l.dial}
	if l.spec.Kind == HTTPSocket {
		s.Proto = "http"
	}
	if l.spec.Shared > 0 {
		s.Shared = 1
	}
	if host, port, err := net.SplitHostPort(l.spec.Addr); err == nil && port == "0" && l.local != nil {
		s.Name = net.JoinHostPort(host, strconv.Itoa(l.local.Port))
	}
	return s
}

// workerStats describes one worker of g as uWSGI does.
func (r *runner) workerStats(g *generation, w *worker) statsWorker {
	sw := statsWorker{ID: w.slot, Pid: w.pid, Status: "idle", Apps: []struct{}{}, Cores: []struct{}{},
		Gen: g.id, Respawns: w.respawns, NotifyStatus: w.status}
	switch {
	case w.cmd == nil:
		sw.State, sw.Pid, sw.Status = "dead", 0, "cheap"
	case g.stopping || w.retired:
		sw.State = "stopping"
	case !g.ready || w.replaces != 0:
		sw.State = "starting"
	default:
		sw.State = "running"
	}
	if !w.started.IsZero() {
		sw.LastSpawn, sw.RespawnCount = w.started.Unix(), w.respawns+1
	}
	if w.cmd != nil {
		sw.Uptime = int64(time.Since(w.started) / time.Second)
		sw.RSS, sw.VSZ = workerMemory(w.pid)
		if r.paused {
			sw.Status = "pause"
		} else if sw.State == "running" {
			sw.Accepting = 1
		}
	}
	return sw
}

// workerMemory returns the resident and virtual size of process pid in
// bytes, 0 when it cannot be read.
func workerMemory(pid int) (rss, vsz uint64) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0, 0
	}
	page := uint64(os.Getpagesize())
	size, _ := strconv.ParseUint(f[0], 10, 64)
	res, _ := strconv.ParseUint(f[1], 10, 64)
	return res * page, size * page
}

// fillQueues reads the accept queue of every TCP socket; the longest is
// the vassal's listen_queue and load, as in uWSGI.
func (d *statsDocument) fillQueues() {
	entries, err := readTCPTable()
	if err != nil {
		return
	}
	for i, local := range d.locals {
		if local != nil {
			d.Sockets[i].Queue = loadOf(entries, local).queue
			d.ListenQueue = max(d.ListenQueue, d.Sockets[i].Queue)
		}
	}
	d.Load = d.ListenQueue
}

// statsRequest asks the loop for a stats document.
type statsRequest struct{ reply chan *statsDocument }

func (statsRequest) isEvent() {}

// statsServer serves one JSON document per connection.
type statsServer struct {
	ln     net.Listener
	unlink string // unix socket file we created
	http   bool
}

// listenStats binds the stats server: a unix socket for a path, TCP for
// host:port. A stale unix socket file is replaced.
func listenStats(addr string, withHTTP bool) (*statsServer, error) {
	s := &statsServer{http: withHTTP}
	var err error
	if isUnixAddr(addr) {
		path := addr
		if addr[0] != '@' {
			if path, err = filepath.Abs(addr); err != nil {
				return nil, err
			}
			if err := removeStaleSocket(path); err != nil {
				return nil, fmt.Errorf("stats %s: %w", addr, err)
			}
			s.unlink = path
		}
		s.ln, err = net.Listen("unix", path)
	} else {
		s.ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("stats %s: %w", addr, err)
	}
	if ul, ok := s.ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return s, nil
}

// serve accepts until the listener is closed. Each connection is answered
// in its own goroutine, so a slow client never holds the loop.
func (s *statsServer) serve(r *runner) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go s.answer(r, c)
	}
}

// answer writes one document to c and closes it.
func (s *statsServer) answer(r *runner, c net.Conn) {
	defer c.Close()
	reply := make(chan *statsDocument, 1)
	select {
	case r.events <- statsRequest{reply: reply}:
	case <-r.done:
		return
	}
	var d *statsDocument
	select {
	case d = <-reply:
	case <-r.done:
		return
	}
	d.fillQueues()
	data, err := json.Marshal(d)
	if err != nil {
		r.log.Error("stats", "err", err)
		return
	}
	data = append(data, '\n')
	_ = c.SetWriteDeadline(time.Now().Add(statsWriteTimeout))
	if s.http {
		// Read the request first: closing with it unread would reset
		// the connection under the client.
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = http.ReadRequest(bufio.NewReader(c))
		fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(data))
	}
	_, _ = c.Write(data)
}

// close stops the server; with vacuum it removes its unix socket file.
func (s *statsServer) close(vacuum bool) {
	s.ln.Close()
	if vacuum && s.unlink != "" {
		os.Remove(s.unlink)
	}
}
