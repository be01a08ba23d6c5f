// Package zmq implements the zmq:// imperial monitor, compatible with
// uWSGI's emperor_zeromq (reference 3.7):
//
//	zmq://ENDPOINT        for example zmq://tcp://127.0.0.1:5252
//
// It binds a ZeroMQ PULL socket (pure Go, go-zeromq/zmq4) and takes
// multipart commands pushed to it:
//
//	touch NAME [CONFIG [UID [GID [SOCKET]]]]
//	destroy NAME
//
// touch with config text spawns NAME with that config, delivered over the
// config channel, or reloads it; without config text (no part, or an empty
// one) NAME is a config file, relative to the first
// emperor-push-allowed-dir or else to the Emperor's working directory.
// UID and GID (decimal) are who the vassal runs as in tyrant mode; for a
// file without them, its owner. destroy stops NAME.
//
// Unlike uWSGI, a second touch within one second reloads too (B32), parts
// are read exactly as sent (B32), a bad command is logged and dropped, the
// SOCKET part (on-demand) is logged as unsupported, and what was asked for
// is journaled (emperor-state-dir) and replayed at start.
package zmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/go-zeromq/zmq4"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/journal"
	"github.com/emperor-dev/emperor/monitor/push"
)

func init() {
	monitor.Register(monitor.Scheme{Name: "zmq", New: New, Settings: func() monitor.Settings { return new(push.Settings) }})
}

// Monitor is a zmq:// monitor. Its fields are set by New and never change
// (status guards its own contents).
type Monitor struct {
	id       string
	endpoint string
	rules    push.Rules
	stateDir string
	ready    chan<- string
	log      *slog.Logger
	status   *push.Status
}

var (
	_ monitor.Monitor  = (*Monitor)(nil)
	_ monitor.Reporter = (*Monitor)(nil)
)

// New builds the monitor for the endpoint after "zmq://".
func New(arg string, opts monitor.Options) (monitor.Monitor, error) {
	if arg == "" {
		return nil, errors.New("zmq://: want an endpoint such as zmq://tcp://127.0.0.1:5252")
	}
	if _, err := guardedEndpoint(arg); err != nil {
		return nil, err
	}
	s, err := monitor.SettingsOf[*push.Settings](opts, "zmq")
	if err != nil {
		return nil, err
	}
	rules, err := push.NewRules(opts, *s)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	id := "zmq://" + arg
	return &Monitor{id: id, endpoint: arg, rules: rules, stateDir: s.StateDir, ready: opts.Ready, log: logger.With("monitor", id), status: new(push.Status)}, nil
}

// Status reports the journal's figures (see push.Status).
func (m *Monitor) Status() map[string]any { return m.status.Status() }

// ID is "zmq://" plus the endpoint.
func (m *Monitor) ID() string { return m.id }

// String is the ID: an endpoint holds no secret.
func (m *Monitor) String() string { return m.id }

// Rescan does nothing: a push source has nothing to rescan.
func (m *Monitor) Rescan() {}

// Command is one parsed zmq message.
type Command struct {
	// Op is "touch" or "destroy".
	Op   string
	Name string
	// Config is the config text; nil for a file-based touch.
	Config []byte
	// Owner is set when a UID part is given.
	Owner *monitor.Owner
	// Socket is the on-demand socket part, which is not supported.
	Socket string
}

// ParseCommand reads a multipart message: [command, name, config?, uid?,
// gid?, socket?]. Empty optional parts count as absent.
func ParseCommand(parts [][]byte) (Command, error) {
	if len(parts) < 2 {
		return Command{}, fmt.Errorf("bad message: %d part(s), want at least a command and a name", len(parts))
	}
	if len(parts) > 6 {
		return Command{}, fmt.Errorf("bad message: %d parts, want at most 6 (command, name, config, uid, gid, socket)", len(parts))
	}
	c := Command{Op: string(parts[0]), Name: string(parts[1])}
	switch c.Op {
	case "touch", "destroy":
	default:
		return c, fmt.Errorf("unknown command %q (want touch or destroy)", push.Quote(c.Op))
	}
	if c.Op == "destroy" {
		return c, nil
	}
	if len(parts) > 2 && len(parts[2]) > 0 {
		c.Config = parts[2]
	}
	if len(parts) > 3 && len(parts[3]) > 0 {
		uid, err := strconv.ParseUint(string(parts[3]), 10, 32)
		if err != nil {
			return c, fmt.Errorf("bad uid %q: want a decimal number", push.Quote(string(parts[3])))
		}
		c.Owner = &monitor.Owner{UID: uint32(uid)}
		if len(parts) > 4 && len(parts[4]) > 0 {
			gid, err := strconv.ParseUint(string(parts[4]), 10, 32)
			if err != nil {
				return c, fmt.Errorf("bad gid %q: want a decimal number", push.Quote(string(parts[4])))
			}
			c.Owner.GID = uint32(gid)
		}
	} else if len(parts) > 4 && len(parts[4]) > 0 {
		return c, errors.New("a gid without a uid")
	}
	if len(parts) > 5 {
		c.Socket = string(parts[5])
	}
	return c, nil
}

// Run binds the PULL socket, replays the journal, reports ready and acts on
// commands until ctx ends. A bind failure is returned (fatal, as in uWSGI).
func (m *Monitor) Run(ctx context.Context, out chan<- monitor.Event) error {
	desired, err := push.NewDesired(m.id, m.id, m.stateDir, m.status, m.log)
	if err != nil {
		return err
	}
	defer desired.Close()
	guarded, err := guardedEndpoint(m.endpoint)
	if err != nil {
		return err
	}
	sock := zmq4.NewPull(ctx)
	if err := sock.Listen(guarded); err != nil {
		sock.Close()
		return fmt.Errorf("zmq bind %s: %w", m.endpoint, err)
	}
	m.log.Info("listening", "endpoint", m.endpoint)
	msgs := make(chan zmq4.Msg)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			msg, err := sock.Recv()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, context.Canceled) {
					return
				}
				// One peer's connection ended (EOF when a pusher
				// disconnects), broke or was cut off; the socket goes on.
				var perr *PeerError
				if errors.As(err, &perr) {
					m.log.Warn("zmq peer cut off", "peer", perr.Peer, "reason", perr.Reason)
				} else {
					m.log.Debug("zmq peer connection ended", "err", err)
				}
				continue
			}
			select {
			case msgs <- msg:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		sock.Close()
		<-recvDone
	}()
	if !desired.Start(ctx, out, m.ready) {
		return nil
	}
	for {
		// While a change waits for the journal no message is taken: ZeroMQ
		// has no acknowledgement, so later commands wait in the socket's
		// queues, in order, instead of overtaking it.
		in := msgs
		if desired.Blocked() {
			in = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-desired.Retry():
			desired.Flush(ctx, out)
		case <-recvDone:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("zmq %s: the socket stopped receiving", m.endpoint)
		case msg := <-in:
			m.handle(ctx, out, desired, msg.Frames)
		}
	}
}

// handle acts on one message; what it cannot use is logged and dropped.
func (m *Monitor) handle(ctx context.Context, out chan<- monitor.Event, d *push.Desired, parts [][]byte) {
	c, err := ParseCommand(parts)
	if err != nil {
		m.log.Warn("message refused", "parts", len(parts), "err", err)
		return
	}
	if c.Socket != "" {
		m.log.Warn("on-demand socket part ignored (not supported)", "vassal", push.Quote(c.Name), "socket", push.Quote(c.Socket))
	}
	if c.Op == "destroy" {
		d.Destroy(ctx, out, c.Name, "destroy command")
		return
	}
	if c.Config != nil {
		if err := m.rules.CheckInlineName(c.Name); err != nil {
			m.log.Warn("message refused", "vassal", push.Quote(c.Name), "err", err)
			return
		}
		if err := push.CheckConfig(c.Config); err != nil {
			m.log.Warn("message refused", "vassal", c.Name, "bytes", len(c.Config), "err", err)
			return
		}
		d.Touch(ctx, out, journal.Entry{Name: c.Name, Config: c.Config, Owner: c.Owner, Source: "config"}, "touch command")
		return
	}
	p, err := m.rules.Resolve(c.Name)
	if err != nil {
		m.log.Warn("message refused", "vassal", push.Quote(c.Name), "err", err)
		return
	}
	if _, err := push.FileOwner(p); err != nil {
		if d.Has(c.Name) {
			d.Destroy(ctx, out, c.Name, "config file gone: "+err.Error())
			return
		}
		m.log.Warn("message refused: no such config file", "vassal", c.Name, "err", err)
		return
	}
	d.Touch(ctx, out, journal.Entry{Name: c.Name, Path: p, Owner: c.Owner, Source: "path"}, "touch command")
}
