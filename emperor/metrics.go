package emperor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emperor-dev/emperor/cgroup"
)

// Prometheus metrics (emperor-metrics): GET /metrics answers in the
// Prometheus text format, built from a Stats snapshot that the loop takes at
// scrape time, so nothing but the loop touches the vassal table or the
// counters.
//
// The format and the tiny HTTP/1 responder are written by hand on purpose:
// prometheus/client_golang adds 4.5 MiB to the Emperor's resident memory at
// start (its protobuf descriptors), and net/http with any metrics library
// still 2.5 MiB; at 1000 vassals the whole Emperor must stay under 15 MiB.

// readyBuckets are the upper bounds (seconds) of the config-to-ready
// histogram.
var readyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Counters are the Emperor's cumulative counts, kept by the loop.
type Counters struct {
	// Spawns counts vassal processes started.
	Spawns uint64 `json:"spawns"`
	// Restarts counts processes restarted, by reason: died, heartbeat,
	// spawn_failed, owner_changed, oom, flood.
	Restarts map[string]uint64 `json:"restarts"`
	// Floods counts processes killed for flooding their control channel.
	Floods uint64 `json:"floods"`
	// ConfigToReady is the time from a config appearing or changing to its
	// vassal accepting (byte 5).
	ConfigToReady Histogram `json:"config_to_ready"`
}

// Histogram is a Prometheus-style cumulative histogram.
type Histogram struct {
	Bounds []float64 `json:"bounds"` // upper bounds, seconds
	Counts []uint64  `json:"counts"` // observations ≤ each bound
	Sum    float64   `json:"sum"`
	Count  uint64    `json:"count"`
}

func newCounters() Counters {
	return Counters{
		Restarts:      map[string]uint64{},
		ConfigToReady: Histogram{Bounds: readyBuckets, Counts: make([]uint64, len(readyBuckets))},
	}
}

func (h *Histogram) observe(v float64) {
	for i, b := range h.Bounds {
		if v <= b {
			h.Counts[i]++
		}
	}
	h.Sum += v
	h.Count++
}

func (c *Counters) clone() Counters {
	out := *c
	out.Restarts = make(map[string]uint64, len(c.Restarts))
	for k, v := range c.Restarts {
		out.Restarts[k] = v
	}
	out.ConfigToReady.Counts = append([]uint64(nil), c.ConfigToReady.Counts...)
	return out
}

// quoteLabel quotes a label value as the text format wants: backslash,
// double quote and newline escaped. A name is any bytes a file name can
// hold, but a label value must be UTF-8: each byte that is not becomes the
// four characters \xNN, so the scrape stays valid and names stay apart.
func quoteLabel(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\n':
			b.WriteString(`\n`)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	b.WriteByte('"')
	return b.String()
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// writeMetrics writes one Stats snapshot in the Prometheus text format:
// with perVassal, a series per vassal of each emperor_vassal_* family (6
// to 12 a vassal: see the README's Metrics section); without, only counts
// and sums by state (metrics_states.go).
func writeMetrics(w io.Writer, s *Stats, perVassal bool) {
	family := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	vassalFamilies := []struct {
		name, help string
		value      func(v *VassalStats) (float64, bool)
	}{
		{"emperor_vassal_up", "1 when the vassal has a running process.", func(v *VassalStats) (float64, bool) {
			if v.Pid > 0 {
				return 1, true
			}
			return 0, true
		}},
		{"emperor_vassal_uptime_seconds", "How long the vassal's current process has run.", func(v *VassalStats) (float64, bool) { return v.Uptime, true }},
		{"emperor_vassal_loyal", "1 once the vassal's process sent byte 17.", func(v *VassalStats) (float64, bool) { return float64(v.Loyal), true }},
		{"emperor_vassal_restarts", "Processes this vassal started after its first.", func(v *VassalStats) (float64, bool) { return float64(v.Restarts), true }},
		{"emperor_vassal_penalty_seconds", "Respawn delay the vassal's next unloyal death would cost.", func(v *VassalStats) (float64, bool) { return v.Penalty, true }},
		{"emperor_vassal_heartbeat_age_seconds", "Seconds since the vassal's last heartbeat.", func(v *VassalStats) (float64, bool) { return v.HeartbeatAge, v.LastHeartbeat != 0 }},
		// Cgroup usage (emperor-cgroup), for vassals that have one.
		{"emperor_vassal_memory_bytes", "Memory the vassal's cgroup uses.", func(v *VassalStats) (float64, bool) {
			return cgroupValue(v, func(u *cgroup.Usage) int64 { return u.Memory })
		}},
		{"emperor_vassal_tasks", "Tasks in the vassal's cgroup.", func(v *VassalStats) (float64, bool) {
			return cgroupValue(v, func(u *cgroup.Usage) int64 { return u.Pids })
		}},
		{"emperor_vassal_cpu_seconds", "CPU time used in the vassal's cgroup.", func(v *VassalStats) (float64, bool) {
			x, ok := cgroupValue(v, func(u *cgroup.Usage) int64 { return u.CPUUsec })
			return x / 1e6, ok
		}},
		{"emperor_vassal_oom_kills", "Processes of the vassal killed for its memory limit.", func(v *VassalStats) (float64, bool) {
			return cgroupValue(v, func(u *cgroup.Usage) int64 { return u.OOMKills })
		}},
		{"emperor_vassal_forks_refused", "Forks in the vassal's cgroup refused by its pids limit.", func(v *VassalStats) (float64, bool) {
			return cgroupValue(v, func(u *cgroup.Usage) int64 { return u.PidsRefused })
		}},
	}
	for _, m := range vassalFamilies {
		if !perVassal {
			break
		}
		family(m.name, "gauge", m.help)
		for i := range s.Vassals {
			v := &s.Vassals[i]
			if x, ok := m.value(v); ok {
				fmt.Fprintf(w, "%s{vassal=%s,monitor=%s} %s\n", m.name, quoteLabel(v.ID), quoteLabel(v.MonitorURI), num(x))
			}
		}
	}
	byState := map[string]int{}
	for _, v := range s.Vassals {
		byState[v.State]++
	}
	family("emperor_vassals", "gauge", "Vassals by state.")
	for st := Waiting; st < numStates; st++ {
		fmt.Fprintf(w, "emperor_vassals{state=%q} %d\n", st.String(), byState[st.String()])
	}
	family("emperor_vassals_starting", "gauge", "Vassals holding a start slot (admission control).")
	fmt.Fprintf(w, "emperor_vassals_starting %d\n", s.Starting)
	family("emperor_vassals_queued", "gauge", "Vassals waiting for a start slot.")
	fmt.Fprintf(w, "emperor_vassals_queued %d\n", s.Queued)
	family("emperor_vassals_throttled", "gauge", "Vassals waiting for the next spawn throttle wave.")
	fmt.Fprintf(w, "emperor_vassals_throttled %d\n", s.Throttled)
	family("emperor_throttle_level_seconds", "gauge", "The spawn throttle level: the least time between two waves of spawns.")
	fmt.Fprintf(w, "emperor_throttle_level_seconds %s\n", num(float64(s.ThrottleMS)/1000))
	family("emperor_spawns_total", "counter", "Vassal processes started.")
	fmt.Fprintf(w, "emperor_spawns_total %d\n", s.Counters.Spawns)
	if perVassal {
		family("emperor_vassal_rate_limited_total", "counter", "Times the vassal sent more than its control-channel byte budget.")
		for i := range s.Vassals {
			v := &s.Vassals[i]
			fmt.Fprintf(w, "emperor_vassal_rate_limited_total{vassal=%s,monitor=%s} %d\n", quoteLabel(v.ID), quoteLabel(v.MonitorURI), v.RateLimited)
		}
	} else {
		writeStateSums(w, s, family)
	}
	family("emperor_fd_exhausted_total", "counter", "Vassal spawns that failed for lack of file descriptors (the vassal waits for one).")
	fmt.Fprintf(w, "emperor_fd_exhausted_total %d\n", s.Fds.Exhausted)
	family("emperor_control_floods_total", "counter", "Vassal processes killed for flooding their control channel.")
	fmt.Fprintf(w, "emperor_control_floods_total %d\n", s.Counters.Floods)
	family("emperor_push_journal_pending", "gauge", "Changes a push monitor holds until its journal has them on disk.")
	for _, m := range s.Monitors {
		if x, ok := m.Status["journal_pending"]; ok {
			fmt.Fprintf(w, "emperor_push_journal_pending{monitor=%s} %v\n", quoteLabel(m.Monitor), x)
		}
	}
	family("emperor_push_journal_errors_total", "counter", "Failed writes of a push monitor's journal (each is retried).")
	for _, m := range s.Monitors {
		if x, ok := m.Status["journal_errors"]; ok {
			fmt.Fprintf(w, "emperor_push_journal_errors_total{monitor=%s} %v\n", quoteLabel(m.Monitor), x)
		}
	}
	family("emperor_restarts_total", "counter", "Vassal processes restarted, by reason.")
	for _, r := range []string{"died", "heartbeat", "spawn_failed", "owner_changed", "oom", "flood"} {
		fmt.Fprintf(w, "emperor_restarts_total{reason=%q} %d\n", r, s.Counters.Restarts[r])
	}
	h := &s.Counters.ConfigToReady
	family("emperor_config_to_ready_seconds", "histogram", "Time from a config appearing or changing to its vassal accepting (byte 5).")
	for i, b := range h.Bounds {
		fmt.Fprintf(w, "emperor_config_to_ready_seconds_bucket{le=%q} %d\n", num(b), h.Counts[i])
	}
	fmt.Fprintf(w, "emperor_config_to_ready_seconds_bucket{le=\"+Inf\"} %d\n", h.Count)
	fmt.Fprintf(w, "emperor_config_to_ready_seconds_sum %s\nemperor_config_to_ready_seconds_count %d\n", num(h.Sum), h.Count)
}

// answerMetrics answers one HTTP request: GET /metrics.
func (e *Emperor) answerMetrics(ctx context.Context, c net.Conn) {
	r := bufio.NewReader(io.LimitReader(c, 16<<10))
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	for { // the headers: read and ignore
		h, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimRight(h, "\r\n") == "" {
			break
		}
	}
	reply := func(status, ctype string, body []byte) {
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", status, ctype, len(body))
		c.Write(body)
	}
	f := strings.Fields(line)
	if len(f) < 2 || (f[0] != "GET" && f[0] != "HEAD") {
		reply("405 Method Not Allowed", "text/plain", []byte("GET /metrics\n"))
		return
	}
	if path, _, _ := strings.Cut(f[1], "?"); path != "/metrics" {
		reply("404 Not Found", "text/plain", []byte("GET /metrics\n"))
		return
	}
	body, err := e.metricsBody.get(ctx)
	if err != nil {
		reply("503 Service Unavailable", "text/plain", []byte(err.Error()+"\n"))
		return
	}
	reply("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
}

// renderMetrics is the metrics answer: the Stats in Prometheus text.
func (e *Emperor) renderMetrics(ctx context.Context, scratch *bytes.Buffer) ([]byte, error) {
	s, err := e.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	writeMetrics(scratch, s, !e.opts.MetricsStatesOnly)
	return bytes.Clone(scratch.Bytes()), nil
}
