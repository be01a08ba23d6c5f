// Package pg implements the pg://CONNINFO;QUERY imperial monitor: vassals
// are the rows of a PostgreSQL query, as in uWSGI's emperor_pg.
//
// The query returns, by position, the vassal's name (with its config
// extension), its config text, a modification time (a timestamp or UNIX
// seconds) and, in tyrant mode, uid and gid. A new row spawns a vassal, a
// changed time or text reloads it, a vanished row stops it.
//
// Unlike uWSGI, which connects, queries and disconnects inside the
// Emperor's loop on every wake-up, the monitor keeps one connection in its
// own goroutine, runs the query every Options.Freq and, on LISTEN/NOTIFY,
// at once when a trigger notifies its channel (examples/pg/vassals.sql). It
// keeps the last good result and emits only differences. A connection or
// query error emits nothing: vassals keep running while the monitor
// reconnects with backoff and then resyncs.
package pg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/dbscan"
)

func init() {
	monitor.Register(monitor.Scheme{Name: "pg", New: New, Settings: func() monitor.Settings { return new(Settings) }})
}

// Settings are what the Emperor's options set for every pg:// monitor.
type Settings struct {
	// Channel is the channel LISTENed on (emperor-pg-channel): empty means
	// DefaultChannel, ChannelOff polling only.
	Channel string
	// Scan are the settings every database monitor shares.
	Scan dbscan.Settings
}

var _ monitor.Settings = (*Settings)(nil)

// Options lists the Emperor options that set s.
func (s *Settings) Options() []config.Setting {
	return append([]config.Setting{
		config.StringSetting("emperor-pg-channel", "channel pg:// monitors LISTEN on (default emperor; off: poll only)", &s.Channel),
	}, s.Scan.Options()...)
}

const (
	// DefaultChannel is the channel LISTENed on unless emperor-pg-channel
	// names another.
	DefaultChannel = "emperor"
	// ChannelOff in emperor-pg-channel turns LISTEN off: polling only.
	ChannelOff = "off"

	connectTimeout = 10 * time.Second
	queryTimeout   = 30 * time.Second
	minBackoff     = 250 * time.Millisecond
	maxBackoff     = 30 * time.Second
)

// Reasons carried by events.
const (
	reasonScan   = "scan"
	reasonNotify = "notify"
	reasonResync = "resync after reconnect"
	reasonRescan = "rescan"
)

// pgMonitor is one pg:// source. Its fields are set by New and never
// change; everything Run mutates lives in Run's own variables.
type pgMonitor struct {
	*dbscan.Source
	target  Target
	channel string // "" when LISTEN is off
}

// New builds a pg monitor from the part of its URI after "pg://".
func New(arg string, opts monitor.Options) (monitor.Monitor, error) {
	t, err := ParseTarget(arg)
	if err != nil {
		return nil, err
	}
	s, err := monitor.SettingsOf[*Settings](opts, "pg")
	if err != nil {
		return nil, err
	}
	ch := s.Channel
	switch ch {
	case "":
		ch = DefaultChannel
	case ChannelOff:
		ch = ""
	}
	return &pgMonitor{
		Source:  dbscan.NewSource("pg://"+arg, "pg://"+Redact(t.ConnInfo)+";"+t.Query, opts, s.Scan),
		target:  t,
		channel: ch,
	}, nil
}

// Run keeps one connection, scans and listens until ctx is cancelled.
func (m *pgMonitor) Run(ctx context.Context, events chan<- monitor.Event) error {
	snap := m.NewSnapshot()
	backoff := dbscan.Backoff{Min: minBackoff, Max: maxBackoff}
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	down := false // the last attempt failed: the next good scan is a resync
	lastErr := "" // the last query error logged, to log each once
	reason, force := reasonScan, false
	// outage logs a failure, drops the connection and waits the backoff;
	// it returns false when ctx is cancelled meanwhile.
	outage := func(msg string, err error) bool {
		delay := backoff.Next()
		m.Log.Warn(msg+"; vassals keep running", "err", err, "retry_in", delay)
		if conn != nil {
			closeConn(conn)
			conn = nil
		}
		down = true
		m.Scanned()
		forced, ok := dbscan.Sleep(ctx, delay, m.RescanC)
		force = force || forced
		return ok
	}
	for {
		if conn == nil {
			c, err := m.connect(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				if !outage("database unreachable", err) {
					return nil
				}
				continue
			}
			conn = c
			if down {
				m.Log.Info("reconnected to the database; resyncing", "vassals", snap.Len())
				reason = reasonResync
			} else {
				m.Log.Info("connected to the database", "listen", m.channel)
			}
		}
		err := m.scan(ctx, conn, snap, events, reason, force)
		if ctx.Err() != nil {
			return nil
		}
		var qe *queryError
		switch {
		case err != nil && (!errors.As(err, &qe) || conn.IsClosed()):
			if !outage("database scan failed", err) {
				return nil
			}
			continue
		case err != nil:
			// The server answered with an error (a bad query, a missing
			// table): the connection is fine, the result is unusable.
			if msg := err.Error(); msg != lastErr {
				m.Log.Error("query failed; vassals keep running", "err", err)
				lastErr = msg
			}
		default:
			if lastErr != "" {
				m.Log.Info("query works again")
			}
			lastErr = ""
			down, force = false, false
			backoff.Reset()
		}
		m.Scanned()
		reason, force, err = m.wait(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !outage("database connection lost", err) {
			return nil
		}
	}
}

// connect opens the connection and LISTENs on the channel.
func (m *pgMonitor) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(m.target.ConnInfo)
	if err != nil {
		return nil, fmt.Errorf("connection string: %s", redactErr(err, m.target.ConnInfo))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	if _, set := cfg.RuntimeParams["application_name"]; !set {
		cfg.RuntimeParams["application_name"] = "emperor"
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout+queryTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, err
	}
	if m.channel != "" {
		if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{m.channel}.Sanitize()); err != nil {
			closeConn(conn)
			return nil, fmt.Errorf("LISTEN %s: %w", m.channel, err)
		}
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// queryError is an error the server answered with: the connection is
// still good.
type queryError struct{ err error }

func (e *queryError) Error() string { return e.err.Error() }
func (e *queryError) Unwrap() error { return e.err }

// scan runs the query once and emits what changed. It applies nothing
// unless the whole result was read.
func (m *pgMonitor) scan(ctx context.Context, conn *pgx.Conn, snap *dbscan.Snapshot, events chan<- monitor.Event, reason string, force bool) error {
	rows, err := m.query(ctx, conn)
	if err != nil {
		return err
	}
	if force {
		reason = reasonRescan
	}
	res := snap.Apply(rows, reason, force)
	dbscan.Report(m.Log, res, m.MaxRemovals)
	if err := dbscan.Emit(ctx, events, res.Events); err != nil {
		return err
	}
	m.Log.Debug("scanned", "rows", len(rows), "events", len(res.Events), "reason", reason)
	return nil
}

// query reads the whole result set.
func (m *pgMonitor) query(ctx context.Context, conn *pgx.Conn) ([]dbscan.Row, error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	res, err := conn.Query(qctx, m.target.Query)
	if err != nil {
		return nil, classify(err)
	}
	defer res.Close()
	var rows []dbscan.Row
	var shape error
	for res.Next() {
		if shape == nil && len(rows) == 0 {
			shape = checkColumns(len(res.FieldDescriptions()), m.Checks.Tyrant)
		}
		if shape != nil {
			continue
		}
		vals, err := res.Values()
		if err != nil {
			rows = append(rows, dbscan.Row{Where: fmt.Sprintf("row %d", len(rows)+1), Err: err})
			continue
		}
		rows = append(rows, makeRow(len(rows), vals, m.Checks.Tyrant))
	}
	if err := res.Err(); err != nil {
		return nil, classify(err)
	}
	if shape == nil {
		shape = checkColumns(len(res.FieldDescriptions()), m.Checks.Tyrant)
	}
	if shape != nil {
		return nil, &queryError{shape}
	}
	return rows, nil
}

// classify marks errors the server sent (the connection survives them) as
// queryErrors; anything else means the connection is gone.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Severity != "FATAL" && pe.Severity != "PANIC" {
		return &queryError{err}
	}
	return err
}

// wait returns when the next scan is due: a notification, the period, a
// rescan request. A non-nil error means the connection is lost.
func (m *pgMonitor) wait(ctx context.Context, conn *pgx.Conn) (reason string, force bool, err error) {
	if m.channel == "" {
		forced, ok := dbscan.Sleep(ctx, m.Freq, m.RescanC)
		if !ok {
			return "", false, ctx.Err()
		}
		if forced {
			return reasonRescan, true, nil
		}
		return reasonScan, false, nil
	}
	wctx, cancel := context.WithTimeout(ctx, m.Freq)
	defer cancel()
	done := make(chan struct{})
	forcedc := make(chan bool, 1)
	go func() {
		select {
		case <-m.RescanC:
			forcedc <- true
			cancel()
		case <-done:
			forcedc <- false
		}
	}()
	n, err := conn.WaitForNotification(wctx)
	close(done)
	forced := <-forcedc
	switch {
	case ctx.Err() != nil:
		return "", false, ctx.Err()
	case forced:
		return reasonRescan, true, nil
	case n != nil:
		m.drainNotifications(conn)
		m.Log.Debug("notified", "channel", n.Channel, "payload", n.Payload)
		return reasonNotify, false, nil
	case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
		return reasonScan, false, nil
	case err == nil:
		err = errors.New("wait for notification returned nothing")
	}
	return "", false, err
}

// drainNotifications discards the notifications pgx has already buffered:
// one scan answers them all. It reads nothing from the network.
func (m *pgMonitor) drainNotifications(conn *pgx.Conn) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		if n, _ := conn.WaitForNotification(done); n == nil {
			return
		}
	}
}
