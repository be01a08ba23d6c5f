// Package mongodb implements the mongodb://ADDR,DB.COLLECTION,JSON and
// mongodb2://key=value,... imperial monitors: vassals are the documents of
// a MongoDB collection that match a JSON filter, as in uWSGI's
// emperor_mongodb.
//
// A document has name (with its config extension), config (the text), ts
// (a BSON date: a change reloads) and, in tyrant mode, uid and gid. Unlike
// uWSGI, which connects and runs N+1 queries inside the Emperor's loop on
// every wake-up, the monitor keeps one client in its own goroutine, runs
// one query every Options.Freq, and follows a change stream when the
// server offers one (a replica set), so changes show at once; it falls
// back to polling when the server does not. It keeps the last good result
// and emits only differences; an error emits nothing.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/dbscan"
)

func init() {
	register("mongodb", ParsePositional)
	register("mongodb2", ParseKeyval)
}

// register makes scheme a mongodb monitor whose argument parse reads. Both
// schemes read the settings every database monitor shares.
func register(scheme string, parse func(string) (Target, error)) {
	monitor.Register(monitor.Scheme{
		Name: scheme,
		New: func(arg string, opts monitor.Options) (monitor.Monitor, error) {
			s, err := monitor.SettingsOf[*dbscan.Settings](opts, scheme)
			if err != nil {
				return nil, err
			}
			t, err := parse(arg)
			if err != nil {
				return nil, err
			}
			return newMonitor(scheme+"://"+arg, t.Display(scheme), t, opts, *s), nil
		},
		Settings: func() monitor.Settings { return new(dbscan.Settings) },
	})
}

const (
	opTimeout     = 10 * time.Second
	minBackoff    = 250 * time.Millisecond
	maxBackoff    = 30 * time.Second
	reasonScan    = "scan"
	reasonChange  = "change stream"
	reasonRescan  = "rescan"
	reasonRecover = "resync after outage"
)

// mongoMonitor is one mongodb:// or mongodb2:// source; its fields never
// change after newMonitor.
type mongoMonitor struct {
	*dbscan.Source
	target Target
}

func newMonitor(id, display string, t Target, opts monitor.Options, s dbscan.Settings) *mongoMonitor {
	return &mongoMonitor{Source: dbscan.NewSource(id, display, opts, s), target: t}
}

func (m *mongoMonitor) clientOptions() *options.ClientOptions {
	o := options.Client().
		SetHosts([]string{m.target.Addr}).
		SetAppName("emperor").
		SetServerSelectionTimeout(opTimeout).
		SetConnectTimeout(opTimeout).
		SetTimeout(opTimeout)
	if m.target.Replica != "" {
		o.SetReplicaSet(m.target.Replica)
		o.SetHosts(splitHosts(m.target.Addr))
	} else {
		o.SetDirect(true)
	}
	if m.target.Username != "" {
		o.SetAuth(options.Credential{Username: m.target.Username, Password: m.target.Password, AuthSource: m.target.AuthDB})
	}
	return o
}

func splitHosts(s string) []string { return slices.Collect(splitSeq(s)) }

// Run scans until ctx is cancelled. The driver keeps and re-opens its
// connections; a failed scan emits nothing and is retried with backoff.
func (m *mongoMonitor) Run(ctx context.Context, events chan<- monitor.Event) error {
	client, err := mongo.Connect(m.clientOptions())
	if err != nil {
		return fmt.Errorf("mongodb client: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = client.Disconnect(dctx)
	}()
	coll := client.Database(m.target.DB).Collection(m.target.Collection)
	snap := m.NewSnapshot()
	backoff := dbscan.Backoff{Min: minBackoff, Max: maxBackoff}
	down := false
	changes := make(chan struct{}, 1)
	var streamDone chan error // nil while no change stream runs
	noStreams := false        // the server said it has no change streams
	reason, force := reasonScan, false
	for {
		rows, err := m.query(ctx, coll)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			if down {
				m.Log.Info("database reachable again; resyncing", "vassals", snap.Len())
				reason = reasonRecover
			}
			if force {
				reason = reasonRescan
			}
			res := snap.Apply(rows, reason, force)
			dbscan.Report(m.Log, res, m.MaxRemovals)
			if dbscan.Emit(ctx, events, res.Events) != nil {
				return nil
			}
			m.Log.Debug("scanned", "documents", len(rows), "events", len(res.Events), "reason", reason)
			down, force = false, false
			backoff.Reset()
		}
		m.Scanned()
		var delay time.Duration
		if err != nil {
			delay = backoff.Next()
			m.Log.Warn("database scan failed; vassals keep running", "err", err, "retry_in", delay)
			down = true
		} else {
			delay = m.Freq
			if streamDone == nil && !noStreams {
				streamDone = make(chan error, 1)
				go func(done chan<- error) { done <- m.follow(ctx, coll, changes) }(streamDone)
			}
		}
		t := time.NewTimer(delay)
		reason = reasonScan
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-m.RescanC:
			force = true
		case <-changes:
			reason = reasonChange
		case err := <-streamDone:
			streamDone = nil
			switch {
			case ctx.Err() != nil:
			case unsupported(err):
				noStreams = true
				m.Log.Info("no change stream; polling every emperor-freq", "err", err, "freq", m.Freq)
			default:
				// Lost with the connection: followed again after the next
				// good scan.
				m.Log.Warn("change stream interrupted; polling meanwhile", "err", err)
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// follow reads the collection's change stream and signals changes (one
// pending signal at most: one scan answers them all). It returns when the
// server refuses change streams or the stream fails.
func (m *mongoMonitor) follow(ctx context.Context, coll *mongo.Collection, changes chan<- struct{}) error {
	stream, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		return err
	}
	defer stream.Close(context.Background())
	m.Log.Info("following the change stream")
	for stream.Next(ctx) {
		select {
		case changes <- struct{}{}:
		default:
		}
	}
	if err := stream.Err(); err != nil {
		return err
	}
	return errors.New("change stream ended")
}

// query reads every matching document.
func (m *mongoMonitor) query(ctx context.Context, coll *mongo.Collection) ([]dbscan.Row, error) {
	qctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	proj := bson.D{{Key: "name", Value: 1}, {Key: "config", Value: 1}, {Key: "ts", Value: 1}, {Key: "uid", Value: 1}, {Key: "gid", Value: 1}}
	cur, err := coll.Find(qctx, m.target.Filter, options.Find().SetProjection(proj))
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.Background())
	var rows []dbscan.Row
	for cur.Next(qctx) {
		rows = append(rows, makeRow(len(rows), cur.Current, m.Checks.Tyrant))
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	return rows, nil
}

// unsupported reports whether err says the server offers no change
// streams (a standalone mongod, FerretDB), as opposed to a lost connection.
func unsupported(err error) bool {
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return false
	}
	// CommandNotFound, IllegalOperation, NotImplemented, "only supported on
	// replica sets", unrecognized pipeline stage.
	for _, code := range []int{59, 20, 238, 40573, 40324} {
		if se.HasErrorCode(code) {
			return true
		}
	}
	return false
}
