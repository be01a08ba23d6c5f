package emperor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/cgroup"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/protocol"
)

// Stats is the Emperor's state as its stats server serves it: uWSGI 2.0's
// emperor stats, field for field and in its order (so tools written for
// `uwsgi --emperor-stats` read it the same), always valid JSON, followed by
// our own fields. The fields marked "ours" are not in uWSGI's.
type Stats struct {
	Version string `json:"version"`
	Pid     int    `json:"pid"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Cwd     string `json:"cwd"`
	// Emperor lists the monitors as uWSGI names its scanners: the
	// directory of dir:// and the pattern of glob:// without the scheme,
	// the others as MonitorURIs shows them (without credentials).
	Emperor       []string      `json:"emperor"`
	EmperorTyrant int           `json:"emperor_tyrant"`
	ThrottleLevel int           `json:"throttle_level"` // whole seconds, as uWSGI (level in ms / 1000)
	Vassals       []VassalStats `json:"vassals"`
	Blacklist     []Blacklisted `json:"blacklist"`

	// Ours: MonitorURIs lists the monitors as our logs and the command
	// socket name them (dir:///etc/vassals), in Emperor's order.
	MonitorURIs []string `json:"monitor_uris"`
	// Monitors holds the figures of the monitors that report their own
	// (monitor.Reporter: the push monitors' journal), by monitor URI.
	Monitors []MonitorStats `json:"monitors,omitempty"`
	// Ours: Scanned is true once every monitor's first scan is applied.
	Scanned bool `json:"scanned"`
	// Ours: admission control (see admission.go and throttle.go).
	Starting    int `json:"starting"`
	Queued      int `json:"queued"`
	MaxStarting int `json:"max_starting"`
	// ThrottleMS is the throttle level in milliseconds; Throttled counts
	// vassals waiting for the next throttle wave.
	ThrottleMS int64 `json:"throttle_ms"`
	Throttled  int   `json:"throttled"`
	// Ours: cumulative counts.
	Counters Counters `json:"counters"`
	// Ours: the fd budget, and the spawns that found no fd (fdbudget.go).
	Fds FdStats `json:"fds"`
}

// VassalStats is one vassal in Stats: uWSGI's fields in uWSGI's order,
// then ours. Times are UNIX seconds, 0 when never.
type VassalStats struct {
	ID            string `json:"id"`
	Pid           int    `json:"pid"` // -1 when no process runs
	Born          int64  `json:"born"`
	LastMod       int64  `json:"last_mod"`
	LastHeartbeat int64  `json:"last_heartbeat"`
	Loyal         int    `json:"loyal"`
	Ready         int    `json:"ready"`
	Accepting     int    `json:"accepting"`
	// When the current process last said loyal, ready and accepting; a
	// reload keeps them, a new process starts from 0 (uWSGI makes a new
	// instance for it).
	LastLoyal     int64 `json:"last_loyal"`
	LastReady     int64 `json:"last_ready"`
	LastAccepting int64 `json:"last_accepting"`
	FirstRun      int64 `json:"first_run"` // when the vassal appeared
	// LastRun is when the current process started or was last reloaded
	// (first_run, or the last reload, when none runs).
	LastRun  int64  `json:"last_run"`
	Cursed   int64  `json:"cursed"` // when it was stopped or cursed, while stopping or cursed; else 0
	Zerg     int    `json:"zerg"`
	OnDemand string `json:"on_demand"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Monitor  string `json:"monitor"`  // as in Stats.Emperor
	Respawns int    `json:"respawns"` // reloads (byte 1 sent), as uWSGI counts

	// Ours.
	MonitorURI string `json:"monitor_uri"` // as in Stats.MonitorURIs
	State      string `json:"state"`
	// Sub says why it is in its state, where that matters: what a
	// waiting vassal waits for (penalty, throttle, slot), what follows a
	// stop (restart, hold, resign), what a disabled one waits for (held,
	// voluntary, exiled, refused). Absent otherwise.
	Sub          string  `json:"sub,omitempty"`
	Since        int64   `json:"since"`
	Uptime       float64 `json:"uptime"` // seconds the current process has run
	Restarts     int     `json:"restarts"`
	LastExit     string  `json:"last_exit"`
	Reason       string  `json:"reason"`
	Penalty      float64 `json:"penalty"` // seconds of respawn delay an unloyal death would now cost
	HeartbeatAge float64 `json:"heartbeat_age"`
	// RateLimited counts the times the vassal sent more than its byte
	// budget and was read slower (a flood past floodAfter kills it).
	RateLimited uint64 `json:"rate_limited"`
	// Bytes counts the protocol bytes the vassal sent since it appeared, by
	// meaning (spawned, accepting, loyal, heartbeat, ...).
	Bytes map[string]uint64 `json:"bytes"`
	// Cgroup is what the vassal's cgroup uses (emperor-cgroup); absent
	// without one. Read off the loop, in Snapshot.
	Cgroup *cgroup.Usage `json:"cgroup,omitempty"`
	cg     *cgroup.Group
	recv   []byteCount // the counts behind Bytes, copied on the loop
}

// byteCount is how many times a vassal sent one protocol byte.
type byteCount struct {
	b protocol.Byte
	n uint64
}

// MonitorStats is one monitor's own figures (see monitor.Reporter).
type MonitorStats struct {
	Monitor string         `json:"monitor"` // its URI
	Status  map[string]any `json:"status"`
}

// Blacklisted is a vassal whose respawns are delayed for dying unloyal:
// uWSGI's blacklist entry, then ours.
type Blacklisted struct {
	ID string `json:"id"`
	// ThrottleLevel is the delay before its next respawn, in ms, counted
	// from LastAttempt (uWSGI's throttle_level / 1000, without its 1 ms
	// for the first death, B11).
	ThrottleLevel int64 `json:"throttle_level"`
	// Attempt numbers its unloyal deaths from 0, as uWSGI does: 0 after
	// the first, 1 after the second.
	Attempt      int   `json:"attempt"`
	FirstAttempt int64 `json:"first_attempt"` // the first unloyal death of the series
	LastAttempt  int64 `json:"last_attempt"`  // the latest

	// Ours.
	Monitor string `json:"monitor"` // as in Stats.Emperor
	Deaths  int    `json:"deaths"`  // unloyal deaths in a row: Attempt+1
}

// scannerArg is how uWSGI names a monitor in its stats: the argument of its
// scanner, which is the directory of a dir:// monitor and the pattern of a
// glob:// one, the URI of the others. Ours keeps their credentials out.
func scannerArg(uri string) string {
	for _, scheme := range []string{"dir://", "glob://"} {
		if rest, ok := strings.CutPrefix(uri, scheme); ok {
			return rest
		}
	}
	return uri
}

// statsQuery asks the loop for a snapshot, its vassals appended to
// vassals: a slice the asking goroutine allocated, so that the loop only
// fills it in.
type statsQuery struct {
	reply   chan *Stats
	vassals []VassalStats
}

// stats builds a snapshot, its vassals appended to vassals[:0]; it runs on
// the loop.
func (e *Emperor) stats(vassals []VassalStats) *Stats {
	now := time.Now()
	s := &Stats{
		Version: e.opts.Version, Pid: os.Getpid(), UID: os.Getuid(), GID: os.Getgid(), Cwd: e.cwd,
		Emperor: []string{}, Vassals: vassals[:0], Blacklist: []Blacklisted{},
		MonitorURIs: []string{},
	}
	for _, m := range e.opts.Monitors {
		s.Emperor = append(s.Emperor, scannerArg(m.String()))
		s.MonitorURIs = append(s.MonitorURIs, m.String())
		if r, ok := m.(monitor.Reporter); ok {
			s.Monitors = append(s.Monitors, MonitorStats{Monitor: m.String(), Status: r.Status()})
		}
	}
	s.Starting, s.MaxStarting = e.starting, e.opts.MaxStarting
	s.Counters = e.counters.clone()
	s.Fds = e.fdStats()
	for _, t := range e.admission {
		if e.valid(t, Slot) {
			s.Queued++
		}
	}
	for _, t := range e.throttled {
		if e.valid(t, Throttle) {
			s.Throttled++
		}
	}
	s.Scanned = e.readySent
	s.ThrottleMS = e.thr.level.Milliseconds()
	s.ThrottleLevel = int(s.ThrottleMS / 1000)
	if e.opts.Tyrant {
		s.EmperorTyrant = 1
	}
	unix := stamp.Unix
	b := func(x bool) int {
		if x {
			return 1
		}
		return 0
	}
	recv := make([]byteCount, 0, 3*len(e.vassals))
	for _, v := range e.vassals {
		uri := e.monitorNames[v.ev.Key.Monitor]
		vs := VassalStats{
			ID: v.ev.Key.Name, Pid: -1, Born: v.ev.Version.ModTime / 1e9, LastMod: v.version.ModTime / 1e9,
			LastHeartbeat: unix(v.said.lastHeartbeat), Loyal: b(v.said.loyal), Ready: b(v.said.ready), Accepting: b(v.said.accepting),
			LastLoyal: unix(v.said.lastLoyal), LastReady: unix(v.said.lastReady), LastAccepting: unix(v.said.lastAccepting),
			FirstRun: unix(v.firstRun), LastRun: unix(latest(v.firstRun, v.lastReload)), Monitor: scannerArg(uri), Respawns: int(v.reloads),
			MonitorURI: uri, State: v.state.String(), Sub: v.sub.String(), Since: unix(v.since), Restarts: int(v.restarts),
			RateLimited: uint64(v.rateLimited), LastExit: v.lastExit, Reason: v.reason,
		}
		// The counts go into one slice shared by every vassal: a map each
		// is built off the loop, in Snapshot (completeStats).
		lo := len(recv)
		recv = append(recv, v.received...)
		vs.recv = recv[lo:len(recv):len(recv)]
		if v.ev.Owner != nil {
			vs.UID, vs.GID = int(v.ev.Owner.UID), int(v.ev.Owner.GID)
		}
		if v.state == Stopping || v.state == Cursed {
			vs.Cursed = unix(v.since)
		}
		if v.proc != nil {
			vs.Pid = v.proc.pid
			vs.Uptime = now.Sub(v.proc.started.Time()).Seconds()
			vs.LastRun = unix(latest(v.proc.started, v.lastReload))
			vs.cg = v.proc.cg // usage read in Snapshot, off the loop
		}
		if !v.said.lastHeartbeat.IsZero() {
			vs.HeartbeatAge = now.Sub(v.said.lastHeartbeat.Time()).Seconds()
		}
		if !e.opts.NoBlacklist && v.unloyalDeaths > 0 {
			vs.Penalty = respawnDelay(int(v.unloyalDeaths)+1, e.opts.Throttle, e.opts.MaxThrottle, false).Seconds()
			s.Blacklist = append(s.Blacklist, Blacklisted{ID: v.ev.Key.Name,
				ThrottleLevel: respawnDelay(int(v.unloyalDeaths), e.opts.Throttle, e.opts.MaxThrottle, false).Milliseconds(),
				Attempt:       int(v.unloyalDeaths) - 1, FirstAttempt: unix(v.firstUnloyal), LastAttempt: unix(v.lastUnloyal),
				Monitor: vs.Monitor, Deaths: int(v.unloyalDeaths)})
		}
		s.Vassals = append(s.Vassals, vs)
	}
	return s
}

// latest is the later of a and b.
func latest(a, b stamp) stamp { return max(a, b) }

// Snapshot returns the current Stats, asked of the loop. It fails when ctx
// ends first or the Emperor is not running.
func (e *Emperor) Snapshot(ctx context.Context) (*Stats, error) {
	// Allocating the vassals here, not on the loop, keeps the zeroing of
	// some MiB and the GC work it brings off the loop: at 10,000 vassals
	// the loop's part of a snapshot is about 40% shorter.
	q := statsQuery{reply: make(chan *Stats, 1), vassals: make([]VassalStats, 0, e.statsCount.Load()+64)}
	reply := q.reply
	select {
	case e.queries <- q:
	case <-e.done:
		return nil, errors.New("the Emperor is not running")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case s := <-reply:
		e.statsCount.Store(int64(len(s.Vassals)))
		completeStats(s)           // the byte counts, off the loop
		s.Fds.InUse, _ = openFds() // fdbudget.go
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// completeStats fills in, off the loop, what the loop's snapshot leaves
// out to stay short at 10,000 vassals: each vassal's byte counts by
// meaning, and its cgroup's usage.
func completeStats(s *Stats) {
	for i := range s.Vassals {
		vs := &s.Vassals[i]
		vs.Bytes = make(map[string]uint64, len(vs.recv))
		for _, c := range vs.recv {
			vs.Bytes[c.b.FromVassal()] = c.n
		}
		vs.recv = nil
	}
	readCgroups(s) // isolation.go
}

// answerStats writes one JSON document of the current Stats.
func (e *Emperor) answerStats(ctx context.Context, c net.Conn) {
	if e.opts.StatsHTTP {
		readRequest(c)
	}
	body, err := e.statsBody.get(ctx)
	if err != nil {
		return
	}
	if e.opts.StatsHTTP {
		fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	}
	c.Write(body)
}

// readRequest takes an HTTP client's request head (stats-http) before the
// answer, so closing the connection does not reset it with the request
// unread: up to 8 KiB, until the blank line, or a second of silence (a
// client that sends nothing, such as nc, is answered then).
func readRequest(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(time.Second))
	defer c.SetReadDeadline(time.Time{})
	var head []byte
	buf := make([]byte, 1024)
	for len(head) < 8<<10 && !bytes.Contains(head, []byte("\r\n\r\n")) && !bytes.Contains(head, []byte("\n\n")) {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			return
		}
	}
}

// renderStats is the stats answer: the Stats as indented JSON. It encodes
// into the renderer's scratch, then indents into a buffer of the last
// answer's size, so the answer is the only allocation of its size.
func (e *Emperor) renderStats(ctx context.Context, scratch *bytes.Buffer) ([]byte, error) {
	s, err := e.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(scratch).Encode(s); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(int(e.statsSize.Load())) // the last answer's size: no regrowth
	if err := json.Indent(&b, scratch.Bytes(), "", "\t"); err != nil {
		return nil, err
	}
	e.statsSize.Store(int64(b.Len()) + 4096)
	return b.Bytes(), nil
}
