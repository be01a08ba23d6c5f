// Package amqp implements the amqp:// imperial monitor, compatible with
// uWSGI's emperor_amqp (reference 3.6):
//
//	amqp://[USER:PASS@]HOST[:PORT][/VHOST]
//
// It declares a non-durable fanout exchange (uwsgi.emperor, or
// emperor-amqp-exchange), binds a server-named exclusive queue to it and
// acts on each message as uWSGI does:
//
//   - no routing key, a body that is an absolute path: the config file at
//     that path is spawned, or reloaded when already known; when the file no
//     longer exists the vassal is stopped;
//   - no routing key, an http:// or https:// URL: the config is fetched
//     (off the monitor's goroutine, with a timeout and a size cap) and run
//     as an inline config; a status other than 200 stops the vassal;
//   - a routing key: it is the (virtual) config name and the body is the
//     config text, delivered over the config channel; an empty body stops
//     the vassal.
//
// Every message for a known vassal reloads it, as in uWSGI. Unlike uWSGI,
// credentials and vhost come from the URI (B31), connecting has a timeout,
// a lost broker is reconnected with backoff while vassals keep running,
// messages that are not understood are logged and dropped, and what was
// asked for is journaled (emperor-state-dir) and replayed at start.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/journal"
	"github.com/emperor-dev/emperor/monitor/push"
)

// DefaultExchange is uWSGI's exchange.
const DefaultExchange = "uwsgi.emperor"

const (
	dialTimeout = 10 * time.Second
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 30 * time.Second
	closeWait   = 2 * time.Second
	// maxFetches bounds the URL fetches in flight: a flood of URL messages
	// costs at most this many connections and config buffers.
	maxFetches = 8
)

func init() {
	monitor.Register(monitor.Scheme{Name: "amqp", New: New, Settings: func() monitor.Settings { return new(Settings) }})
}

// Settings are what the Emperor's options set for every amqp:// monitor.
type Settings struct {
	// Exchange is the fanout exchange to bind (emperor-amqp-exchange);
	// empty: uWSGI's DefaultExchange.
	Exchange string
	// FetchTimeout bounds an http(s) config fetch
	// (emperor-push-fetch-timeout); zero: push.DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Push are the settings every push monitor shares.
	Push push.Settings
}

var _ monitor.Settings = (*Settings)(nil)

// Options lists the Emperor options that set s.
func (s *Settings) Options() []config.Setting {
	return append([]config.Setting{
		config.StringSetting("emperor-amqp-exchange", "amqp://: the fanout exchange to bind (default uwsgi.emperor)", &s.Exchange),
		config.DurationSetting("emperor-push-fetch-timeout", "amqp://: seconds an http(s) config fetch may take (default 10)", &s.FetchTimeout, time.Second),
	}, s.Push.Options()...)
}

// Monitor is an amqp:// monitor. Its fields are set by New and never
// change; everything Run mutates lives in Run's goroutine.
type Monitor struct {
	id       string
	display  string
	uri      amqp091.URI
	exchange string
	rules    push.Rules
	client   *http.Client
	stateDir string
	ready    chan<- string
	log      *slog.Logger
	status   *push.Status // guards its own contents
}

var (
	_ monitor.Monitor  = (*Monitor)(nil)
	_ monitor.Reporter = (*Monitor)(nil)
)

// New builds the monitor for the part of the URI after "amqp://".
func New(arg string, opts monitor.Options) (monitor.Monitor, error) {
	uri, err := ParseURI(arg)
	if err != nil {
		return nil, err
	}
	s, err := monitor.SettingsOf[*Settings](opts, "amqp")
	if err != nil {
		return nil, err
	}
	rules, err := push.NewRules(opts, s.Push)
	if err != nil {
		return nil, err
	}
	exchange := s.Exchange
	if exchange == "" {
		exchange = DefaultExchange
	}
	id := "amqp://" + arg
	display := "amqp://" + redacted(uri)
	if exchange != DefaultExchange {
		id += "#" + exchange
		display += "#" + exchange
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Monitor{
		id:       id,
		display:  display,
		uri:      uri,
		exchange: exchange,
		rules:    rules,
		client:   push.NewClient(s.FetchTimeout),
		stateDir: s.Push.StateDir,
		ready:    opts.Ready,
		log:      logger.With("monitor", display),
		status:   new(push.Status),
	}, nil
}

// Status reports the journal's figures (see push.Status).
func (m *Monitor) Status() map[string]any { return m.status.Status() }

// ParseURI reads [USER:PASS@]HOST[:PORT][/VHOST]; the port defaults to
// 5672, credentials to guest/guest (RabbitMQ's), the vhost to "/".
func ParseURI(arg string) (amqp091.URI, error) {
	if arg == "" || strings.HasPrefix(arg, "/") {
		return amqp091.URI{}, fmt.Errorf("amqp://%s: want [USER:PASS@]HOST[:PORT][/VHOST]", arg)
	}
	uri, err := amqp091.ParseURI("amqp://" + arg)
	if err != nil {
		return amqp091.URI{}, fmt.Errorf("amqp URI: %w", err)
	}
	if uri.Host == "" || uri.Port <= 0 || uri.Port > 65535 {
		return amqp091.URI{}, fmt.Errorf("amqp://%s: want [USER:PASS@]HOST[:PORT][/VHOST] with a host and a port in 1-65535", arg)
	}
	return uri, nil
}

func redacted(u amqp091.URI) string {
	s := u.Host
	if u.Port != 0 {
		s = net.JoinHostPort(u.Host, fmt.Sprint(u.Port))
	}
	if u.Vhost != "" && u.Vhost != "/" {
		s += "/" + u.Vhost
	}
	if u.Username != "" {
		s = u.Username + ":xxxxx@" + s
	}
	return s
}

// ID is "amqp://" plus the URI as given (it may hold a password), plus
// "#EXCHANGE" when not uwsgi.emperor.
func (m *Monitor) ID() string { return m.id }

// String is the ID with the password redacted.
func (m *Monitor) String() string { return m.display }

// Rescan does nothing: a push source has nothing to rescan, and what it
// asked for is already in the Emperor's table.
func (m *Monitor) Rescan() {}

// Run replays the journal, reports ready, then consumes messages until ctx
// ends, reconnecting with backoff whenever the broker goes away.
func (m *Monitor) Run(ctx context.Context, out chan<- monitor.Event) error {
	desired, err := push.NewDesired(m.id, m.display, m.stateDir, m.status, m.log)
	if err != nil {
		return err
	}
	defer desired.Close()
	if !desired.Start(ctx, out, m.ready) {
		return nil
	}
	r := &runState{m: m, desired: desired, out: out, fetched: make(chan push.Fetched), seq: map[string]uint64{}}
	defer r.fetches.Wait()
	backoff := minBackoff
	for {
		s, err := m.connect(ctx)
		if err == nil {
			backoff = minBackoff
			m.log.Info("consuming", "exchange", m.exchange, "queue", s.queue)
			err = r.consume(ctx, s)
			s.close()
			if ctx.Err() != nil {
				return nil
			}
			m.log.Warn("lost the broker; vassals keep running, reconnecting", "err", err)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		m.log.Warn("cannot reach the broker; vassals keep running", "err", err, "retry_in", backoff)
		if !r.wait(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session is one connection with its consuming channel.
type session struct {
	conn       *amqp091.Connection
	ch         *amqp091.Channel
	queue      string
	deliveries <-chan amqp091.Delivery
	closed     chan *amqp091.Error
	chClosed   chan *amqp091.Error
}

// close closes the connection, waiting at most closeWait for the broker.
func (s *session) close() {
	s.conn.CloseDeadline(time.Now().Add(closeWait))
}

// connect dials the broker and sets up the exchange, queue and consumer.
func (m *Monitor) connect(ctx context.Context) (*session, error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := amqp091.DialConfig(m.uri.String(), amqp091.Config{
		Vhost: m.uri.Vhost,
		Dial: func(network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		Properties: amqp091.Table{"product": "emperor", "connection_name": "emperor " + m.display},
	})
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	fail := func(step string, err error) (*session, error) {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail("open channel", err)
	}
	if err := ch.ExchangeDeclare(m.exchange, "fanout", false, false, false, false, nil); err != nil {
		return fail("declare exchange "+m.exchange, err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fail("declare queue", err)
	}
	if err := ch.QueueBind(q.Name, "", m.exchange, false, nil); err != nil {
		return fail("bind queue", err)
	}
	deliveries, err := ch.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		return fail("consume", err)
	}
	return &session{
		conn: conn, ch: ch, queue: q.Name, deliveries: deliveries,
		closed:   conn.NotifyClose(make(chan *amqp091.Error, 1)),
		chClosed: ch.NotifyClose(make(chan *amqp091.Error, 1)),
	}, nil
}

// runState is what Run's goroutine owns.
type runState struct {
	m       *Monitor
	desired *push.Desired
	out     chan<- monitor.Event
	fetched chan push.Fetched
	// seq counts the messages per vassal name, so that a fetch answering
	// an older message is dropped.
	seq      map[string]uint64
	fetches  sync.WaitGroup
	inflight int // fetches started and not yet answered
}

// wait waits d while answering fetches; false when ctx ended.
func (r *runState) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-r.desired.Retry():
			r.desired.Flush(ctx, r.out)
		case f := <-r.fetched:
			r.fetchDone(ctx, f)
		}
	}
}

// consume handles deliveries until the connection ends or ctx does. A
// delivery is acknowledged once what it changed is journaled; while a
// change waits for the journal, no delivery is taken.
func (r *runState) consume(ctx context.Context, s *session) error {
	for {
		deliveries := s.deliveries
		if r.desired.Blocked() {
			deliveries = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-s.closed:
			return connErr(err)
		case err := <-s.chClosed:
			return connErr(err)
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("the broker closed the consumer")
			}
			r.handle(ctx, d.RoutingKey, d.Body)
			r.desired.Then(func() {
				if err := d.Ack(false); err != nil {
					// The channel is gone; the consume loop sees it close.
					r.m.log.Debug("ack failed", "err", err)
				}
			})
		case <-r.desired.Retry():
			r.desired.Flush(ctx, r.out)
		case f := <-r.fetched:
			r.fetchDone(ctx, f)
		}
	}
}

func connErr(err *amqp091.Error) error {
	if err == nil {
		return errors.New("connection closed")
	}
	return err
}

// handle acts on one message (see the package doc). Anything it does not
// understand is logged, naming the message, and dropped.
func (r *runState) handle(ctx context.Context, key string, body []byte) {
	log := r.m.log
	if key != "" {
		r.seq[key]++
		if err := r.m.rules.CheckInlineName(key); err != nil {
			log.Warn("message refused", "routing_key", push.Quote(key), "bytes", len(body), "err", err)
			return
		}
		if len(body) == 0 {
			r.desired.Destroy(ctx, r.out, key, "empty config")
			return
		}
		if err := push.CheckConfig(body); err != nil {
			log.Warn("message refused", "vassal", key, "bytes", len(body), "err", err)
			return
		}
		r.desired.Touch(ctx, r.out, journal.Entry{Name: key, Config: body, Source: "config"}, "config message")
		return
	}
	if len(body) == 0 {
		log.Warn("message refused: empty body and no routing key")
		return
	}
	if len(body) > monitor.MaxNameLen || !utf8.Valid(body) {
		log.Warn("message refused: without a routing key the body must be a config path or an http(s) URL of at most 254 bytes",
			"bytes", len(body), "utf8", utf8.Valid(body))
		return
	}
	s := strings.TrimSpace(string(body))
	r.seq[s]++
	switch {
	case push.IsURL(s):
		if err := r.m.rules.CheckName(s); err != nil {
			log.Warn("message refused", "url", push.Quote(s), "err", err)
			return
		}
		if r.inflight >= maxFetches {
			log.Warn("message refused: too many config fetches in flight", "url", push.Quote(s), "limit", maxFetches)
			return
		}
		r.inflight++
		r.fetches.Add(1)
		go func(seq uint64) {
			defer r.fetches.Done()
			push.Fetch(ctx, r.m.client, s, seq, r.fetched)
		}(r.seq[s])
	case filepath.IsAbs(s):
		p, err := r.m.rules.Resolve(s)
		if err != nil {
			log.Warn("message refused", "path", push.Quote(s), "err", err)
			return
		}
		if p != s {
			log.Warn("message refused: the path is not clean", "path", push.Quote(s), "clean", p)
			return
		}
		if _, err := push.FileOwner(p); err != nil {
			// uWSGI: a path that is no longer a regular file stops it.
			r.desired.Destroy(ctx, r.out, p, "config file gone: "+err.Error())
			return
		}
		r.desired.Touch(ctx, r.out, journal.Entry{Name: p, Path: p, Source: "path"}, "path message")
	default:
		log.Warn("message refused: without a routing key the body must be an absolute config path or an http(s) URL",
			"body", push.Quote(s))
	}
}

// fetchDone applies a finished URL fetch, unless a newer message for the
// same URL came in since.
func (r *runState) fetchDone(ctx context.Context, f push.Fetched) {
	r.inflight--
	if f.Seq != r.seq[f.Name] {
		return
	}
	switch {
	case f.Err != nil:
		// Not a removal: the server may be down for a moment.
		r.m.log.Warn("config fetch failed; nothing changed", "vassal", f.Name, "status", f.Status, "err", f.Err)
	case f.Status != http.StatusOK:
		r.desired.Destroy(ctx, r.out, f.Name, fmt.Sprintf("config URL answered %d", f.Status))
	default:
		r.desired.Touch(ctx, r.out, journal.Entry{Name: f.Name, Config: f.Config, Source: "url"}, "URL message")
	}
}
