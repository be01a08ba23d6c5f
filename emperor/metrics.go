package emperor

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Emperor's Prometheus metrics (emperor-metrics). Gauges
// come from a Stats snapshot taken by the loop at scrape time, so nothing
// but the loop touches the vassal table; counters and the histogram are
// updated by the loop as things happen.
type metrics struct {
	spawns        prometheus.Counter
	restarts      *prometheus.CounterVec
	configToReady prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		spawns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emperor_spawns_total", Help: "Vassal processes started.",
		}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emperor_restarts_total", Help: "Vassal processes restarted, by reason (died, heartbeat, spawn_failed, owner_changed).",
		}, []string{"reason"}),
		configToReady: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "emperor_config_to_ready_seconds",
			Help:    "Time from a config appearing or changing to its vassal announcing it accepts (byte 5) or is ready (byte 1).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
}

// restart counts one restart; safe on a nil *metrics (metrics off).
func (m *metrics) restart(reason string) {
	if m != nil {
		m.restarts.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) spawned() {
	if m != nil {
		m.spawns.Inc()
	}
}

func (m *metrics) ready(d time.Duration) {
	if m != nil {
		m.configToReady.Observe(d.Seconds())
	}
}

var (
	descVassals  = prometheus.NewDesc("emperor_vassals", "Vassals by state.", []string{"state"}, nil)
	descUp       = prometheus.NewDesc("emperor_vassal_up", "1 when the vassal has a running process.", []string{"vassal", "monitor"}, nil)
	descUptime   = prometheus.NewDesc("emperor_vassal_uptime_seconds", "How long the vassal's current process has run.", []string{"vassal", "monitor"}, nil)
	descLoyal    = prometheus.NewDesc("emperor_vassal_loyal", "1 once the vassal's process sent byte 17.", []string{"vassal", "monitor"}, nil)
	descVRestart = prometheus.NewDesc("emperor_vassal_restarts", "Processes this vassal started after its first.", []string{"vassal", "monitor"}, nil)
	descPenalty  = prometheus.NewDesc("emperor_vassal_penalty_seconds", "Respawn delay the vassal's next unloyal death would cost.", []string{"vassal", "monitor"}, nil)
	descHB       = prometheus.NewDesc("emperor_vassal_heartbeat_age_seconds", "Seconds since the vassal's last heartbeat (absent before its first).", []string{"vassal", "monitor"}, nil)
	descThrottle = prometheus.NewDesc("emperor_throttle_level", "The global spawn throttle level, as uWSGI reports it.", nil, nil)
)

// snapshotCollector turns a Stats snapshot into gauges at scrape time.
type snapshotCollector struct{ e *Emperor }

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVassals, descUp, descUptime, descLoyal, descVRestart, descPenalty, descHB, descThrottle} {
		ch <- d
	}
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	s, err := c.e.Snapshot(ctx)
	if err != nil {
		return
	}
	byState := map[string]int{}
	for st := Waiting; st < numStates; st++ {
		byState[st.String()] = 0
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, v := range s.Vassals {
		byState[v.State]++
		up := 0.0
		if v.Pid > 0 {
			up = 1
		}
		g(descUp, up, v.ID, v.Monitor)
		g(descUptime, v.Uptime, v.ID, v.Monitor)
		g(descLoyal, float64(v.Loyal), v.ID, v.Monitor)
		g(descVRestart, float64(v.Restarts), v.ID, v.Monitor)
		g(descPenalty, v.Penalty, v.ID, v.Monitor)
		if v.LastHeartbeat != 0 {
			g(descHB, v.HeartbeatAge, v.ID, v.Monitor)
		}
	}
	for st, n := range byState {
		g(descVassals, float64(n), st)
	}
	g(descThrottle, float64(s.ThrottleLevel))
}

// serveMetrics serves /metrics on l until ctx ends.
func (e *Emperor) serveMetrics(ctx context.Context, l net.Listener) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(snapshotCollector{e}, e.metrics.spawns, e.metrics.restarts, e.metrics.configToReady)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 5 * time.Second}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
		e.log.Error("metrics server stopped", "err", err)
	}
}
