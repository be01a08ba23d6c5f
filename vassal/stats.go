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
	"time"
)

// statsWriteTimeout bounds the write of one stats document.
const statsWriteTimeout = 4 * time.Second

// statsDocument is what the stats server writes (see the package doc).
type statsDocument struct {
	Version    string         `json:"version"`
	Pid        int            `json:"pid"`
	UID        int            `json:"uid"`
	GID        int            `json:"gid"`
	Cwd        string         `json:"cwd"`
	Name       string         `json:"name"`
	Uptime     int64          `json:"uptime"`
	Generation int            `json:"generation"`
	Ready      bool           `json:"ready"`
	Loyal      bool           `json:"loyal"`
	Emperor    bool           `json:"emperor"`
	Paused     bool           `json:"paused"`
	Sockets    []statsSocket  `json:"sockets"`
	Workers    []statsWorker  `json:"workers"`
	Daemons    []statsDaemon  `json:"daemons"`
	locals     []*net.TCPAddr // per socket, nil for unix: for fillQueues
}

type statsSocket struct {
	Name  string `json:"name"`
	Proto string `json:"proto"`
	Addr  string `json:"addr"`
	Queue uint64 `json:"queue"`
}

type statsWorker struct {
	ID           int    `json:"id"`
	Gen          int    `json:"gen"`
	Pid          int    `json:"pid"`
	Status       string `json:"status"`
	Respawns     int    `json:"respawns"`
	Uptime       int64  `json:"uptime"`
	RSS          uint64 `json:"rss"`
	NotifyStatus string `json:"notify_status"`
}

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
		Name: r.name, Uptime: int64(time.Since(r.started) / time.Second),
		Loyal: r.loyal, Emperor: r.em != nil, Paused: r.paused,
		Sockets: []statsSocket{}, Workers: []statsWorker{}, Daemons: []statsDaemon{},
	}
	if n := len(r.gens); n > 0 {
		g := r.gens[n-1]
		d.Generation, d.Ready = g.id, g.ready
		for _, l := range g.sockets {
			d.Sockets = append(d.Sockets, statsSocket{Name: l.spec.Kind.String(), Proto: l.network, Addr: l.dial})
			d.locals = append(d.locals, l.local)
		}
	}
	for _, g := range r.gens {
		for _, w := range g.workers {
			sw := statsWorker{ID: w.slot, Gen: g.id, Pid: w.pid, Respawns: w.respawns, NotifyStatus: w.status}
			switch {
			case w.cmd == nil:
				sw.Status, sw.Pid = "dead", 0
			case g.stopping || w.retired:
				sw.Status = "stopping"
			case !g.ready || w.replaces != 0:
				sw.Status = "starting"
			default:
				sw.Status = "running"
			}
			if w.cmd != nil {
				sw.Uptime = int64(time.Since(w.started) / time.Second)
				sw.RSS, _ = workerRSS(w.pid)
			}
			d.Workers = append(d.Workers, sw)
		}
	}
	d.Daemons = append(d.Daemons, r.daemonStats()...)
	return d
}

// fillQueues reads the accept queue of every TCP socket.
func (d *statsDocument) fillQueues() {
	entries, err := readTCPTable()
	if err != nil {
		return
	}
	for i, local := range d.locals {
		if local != nil {
			d.Sockets[i].Queue = loadOf(entries, local).queue
		}
	}
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
