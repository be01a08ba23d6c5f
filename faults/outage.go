package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/emperor-dev/emperor/internal/cutproxy"
	"github.com/emperor-dev/emperor/internal/testenv"
)

// Source outages: the PostgreSQL, RabbitMQ or MongoDB-wire server the
// Emperor reads its vassals from goes away for a while (60 s, -short 5 s).
// The shared servers are never stopped: a TCP proxy of ours stands between
// the Emperor and the server, and the outage is the proxy cutting every
// connection and refusing new ones.
func init() {
	register(Scenario{
		Order: 50, Name: "outage-pg",
		Fault: "pg:// source unreachable for 60 s (-short 5 s; connections cut at a proxy), 3 vassals running",
		Hold:  "0 vassals stopped or reloaded; a row inserted during the outage is applied after restore (≤ 45 s: backoff cap 30 s): time to resync",
		Run:   func(ctx context.Context, env *Env) (Result, error) { return runOutage(ctx, env, pgOutage(env)) },
	})
	register(Scenario{
		Order: 51, Name: "outage-amqp",
		Fault: "amqp:// broker unreachable for 60 s (-short 5 s; connections cut at a proxy), 3 pushed vassals running",
		Hold:  "0 vassals stopped or reloaded; messages published during an outage are missed by design (README): time until reconnected and a message published after restore is applied (≤ 45 s: backoff cap 30 s)",
		Run:   func(ctx context.Context, env *Env) (Result, error) { return runOutage(ctx, env, amqpOutage(env)) },
	})
	register(Scenario{
		Order: 52, Name: "outage-mongodb",
		Fault: "mongodb:// source (FerretDB wire server) unreachable for 60 s (-short 5 s; connections cut at a proxy), 3 vassals running",
		Hold:  "0 vassals stopped or reloaded; a document inserted during the outage is applied after restore (≤ 45 s: backoff cap 30 s): time to resync",
		Run:   func(ctx context.Context, env *Env) (Result, error) { return runOutage(ctx, env, mongoOutage(env)) },
	})
}

// outageSource is one kind of source for runOutage.
type outageSource struct {
	kind string // pg, amqp, mongodb: for messages
	// setup prepares the source (through a proxy it starts to target)
	// holding the vassals first, and returns the Emperor's arguments.
	// pushed sources (amqp) get them by add once the monitor consumes.
	setup func(ctx context.Context, first map[string]string) (args []string, proxy *cutproxy.Proxy, err error)
	// add adds a vassal at the source, not through the proxy.
	add func(ctx context.Context, name, config string) error
	// pushed: the vassals are added once the monitor consumes (ready),
	// and a change made during the outage is lost by design.
	pushed bool
	ready  []string // log parts once the monitor is ready for pushes
	// down: log parts saying the monitor saw the outage; back: it is back.
	down, back []string
}

// vassalINI is a config for our runtime serving hello on port.
func vassalINI(env *Env, port int) string {
	return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\n", port, env.Hello)
}

// outageMaxResync bounds the resync: the monitors' backoff cap (30 s)
// plus a connect.
const outageMaxResync = 45 * time.Second

func runOutage(ctx context.Context, env *Env, src outageSource) (Result, error) {
	names := []string{"a.ini", "b.ini", "c.ini"}
	ports := map[string]int{}
	first := map[string]string{}
	for _, n := range append(names, "d.ini") {
		p, err := FreePort()
		if err != nil {
			return Result{}, err
		}
		ports[n] = p
		if n != "d.ini" {
			first[n] = vassalINI(env, p)
		}
	}
	args, proxy, err := src.setup(ctx, first)
	if err != nil {
		return Result{}, err
	}
	args = append(args, "--binary-path", env.Vassal, "--emperor-freq", "1")
	em, err := env.StartEmperor(args...)
	if err != nil {
		return Result{}, err
	}
	if src.pushed {
		if _, err := em.WaitLog(ctx, 0, src.ready...); err != nil {
			return Result{}, err
		}
		for _, n := range names {
			if err := src.add(ctx, n, first[n]); err != nil {
				return Result{}, err
			}
		}
	}
	pids := map[string]int{}
	for _, n := range names {
		line, err := em.WaitLog(ctx, 0, `msg="vassal running"`, "vassal="+n+" ")
		if err != nil {
			return Result{}, err
		}
		pids[n], _ = strconv.Atoi(Field(line, "pid"))
		u := fmt.Sprintf("http://127.0.0.1:%d/", ports[n])
		if _, ok := Poll(ctx, func() bool { _, err := Get(u); return err == nil }); !ok {
			return Result{}, fmt.Errorf("%s (%s) never served", n, u)
		}
	}

	outage := time.Duration(env.Count(60, 5)) * time.Second
	mark := em.LogSize()
	cut := time.Now()
	proxy.Cut()
	// A change made at the source while the Emperor cannot see it.
	if !src.pushed {
		if err := src.add(ctx, "d.ini", vassalINI(env, ports["d.ini"])); err != nil {
			return Result{}, err
		}
	}
	probes, served := 0, 0
	seen := time.Duration(-1)
	for time.Since(cut) < outage {
		if seen < 0 {
			if _, ok := findLine(em.Log, mark, src.down); ok {
				seen = time.Since(cut)
			}
		}
		for _, n := range names {
			probes++
			if _, err := Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[n])); err == nil {
				served++
			}
		}
		select {
		case <-ctx.Done():
			proxy.Restore()
			return Result{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if seen < 0 {
		if _, ok := findLine(em.Log, mark, src.down); ok {
			seen = time.Since(cut)
		}
	}
	proxy.Restore()
	restored := time.Now()

	var figure string
	applied := false
	var resync time.Duration
	wctx, cancel := context.WithTimeout(ctx, outageMaxResync+30*time.Second)
	defer cancel()
	if src.pushed {
		// The monitor reconnects on its own; only then can a message reach it.
		if _, err := em.WaitLog(wctx, mark, src.back...); err == nil {
			reconnect := time.Since(restored)
			published := time.Now()
			if err := src.add(ctx, "d.ini", vassalINI(env, ports["d.ini"])); err != nil {
				return Result{}, err
			}
			if _, err := em.WaitLog(wctx, mark, `msg="vassal running"`, "vassal=d.ini "); err == nil {
				applied = true
				resync = time.Since(restored)
				figure = fmt.Sprintf("reconnected %s after restore, a message published then applied in %s (%s in all); messages published during the outage are missed by design",
					Ms(reconnect), Ms(time.Since(published)), Ms(resync))
			} else {
				figure = fmt.Sprintf("reconnected %s after restore, a message published then never applied", Ms(reconnect))
			}
		} else {
			figure = "never reconnected after restore"
		}
	} else {
		if _, err := em.WaitLog(wctx, mark, `msg="vassal running"`, "vassal=d.ini "); err == nil {
			applied = true
			resync = time.Since(restored)
			figure = fmt.Sprintf("the %s inserted during the outage applied %s after restore", map[bool]string{true: "document", false: "row"}[src.kind == "mongodb"], Ms(resync))
		} else {
			figure = "the change made during the outage never applied after restore"
		}
	}

	// What the outage did to the vassals that ran through it.
	disrupted := 0
	var what []string
	for _, n := range names {
		eachLine(em.Log, mark, func(l string) bool {
			if !strings.Contains(l, "vassal="+n+" ") {
				return true
			}
			for _, m := range []string{"vassal stopping", "vassal reload", "vassal spawning", "vassal waiting", "vassal cursed", "vassal absent", "vassal disabled"} {
				if strings.Contains(l, `msg="`+m+`"`) {
					disrupted++
					what = append(what, n+": "+m)
				}
			}
			return true
		})
		if !Running(pids[n]) {
			disrupted++
			what = append(what, fmt.Sprintf("%s: pid %d gone", n, pids[n]))
		}
	}
	seenStr := "outage never logged"
	if seen >= 0 {
		seenStr = "outage logged after " + Ms(seen)
	}
	m := fmt.Sprintf("%d of 3 stopped or reloaded (pids unchanged), %d/%d probes served during the %s outage, %s; %s",
		disrupted, served, probes, outage, seenStr, figure)
	if len(what) > 0 {
		m += " [" + strings.Join(what, "; ") + "]"
	}
	held := disrupted == 0 && served == probes && applied && env.Bound(resync <= outageMaxResync)
	return Result{Measured: m, Held: held}, nil
}

// newCutProxy puts a cuttable proxy (internal/cutproxy) before target,
// until the scenario ends.
func newCutProxy(env *Env, target string) (*cutproxy.Proxy, error) {
	p, err := cutproxy.New(target)
	if err != nil {
		return nil, err
	}
	env.Cleanup(p.Close)
	return p, nil
}

// outageName is a name for tables, exchanges and collections no one else
// uses at the same time.
func outageName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9)
}

// --- PostgreSQL ---

const pgBase = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"

func pgExec(ctx context.Context, conninfo string, sql ...string) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, conninfo)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for _, s := range sql {
		if _, err := c.Exec(cctx, s); err != nil {
			return fmt.Errorf("%.60s: %w", strings.TrimSpace(s), err)
		}
	}
	return nil
}

func pgOutage(env *Env) outageSource {
	schema := outageName("faults_outage")
	inSchema := pgBase + " search_path=" + schema
	return outageSource{
		kind: "pg",
		setup: func(ctx context.Context, first map[string]string) ([]string, *cutproxy.Proxy, error) {
			root := filepath.Dir(filepath.Dir(env.Emperor))
			sql, err := os.ReadFile(filepath.Join(root, "examples", "pg", "vassals.sql"))
			if err != nil {
				return nil, nil, err
			}
			if err := pgExec(ctx, pgBase, "CREATE SCHEMA "+schema); err != nil {
				return nil, nil, fmt.Errorf("PostgreSQL at %s: %w", pgBase, err)
			}
			env.Cleanup(func() { pgExec(context.Background(), pgBase, "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
			script := strings.ReplaceAll(string(sql), "emperor_notify('emperor')", "emperor_notify('"+schema+"')")
			if err := pgExec(ctx, inSchema, "SET client_min_messages = warning; "+script); err != nil {
				return nil, nil, err
			}
			for n, c := range first {
				if err := pgExec(ctx, inSchema, pgInsert(n, c)); err != nil {
					return nil, nil, err
				}
			}
			proxy, err := newCutProxy(env, "127.0.0.1:5432")
			if err != nil {
				return nil, nil, err
			}
			via := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=test sslmode=disable search_path=%s", proxy.Port(), schema)
			return []string{"--emperor", "pg://" + via + ";SELECT name,config,ts FROM vassals", "--emperor-pg-channel", schema}, proxy, nil
		},
		add: func(ctx context.Context, name, config string) error {
			return pgExec(ctx, inSchema, pgInsert(name, config))
		},
		down: []string{"vassals keep running"},
	}
}

func pgInsert(name, config string) string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	return "INSERT INTO vassals (name, config) VALUES (" + q(name) + ", " + q(config) + ")"
}

// --- RabbitMQ ---

const amqpAddr = "127.0.0.1:5672"

func amqpOutage(env *Env) outageSource {
	exchange := strings.ReplaceAll(outageName("faults.outage"), "_", ".")
	return outageSource{
		kind:   "amqp",
		pushed: true,
		setup: func(ctx context.Context, first map[string]string) ([]string, *cutproxy.Proxy, error) {
			conn, err := amqpDial()
			if err != nil {
				return nil, nil, fmt.Errorf("RabbitMQ at %s: %w", amqpAddr, err)
			}
			conn.Close()
			env.Cleanup(func() {
				if conn, err := amqpDial(); err == nil {
					if c, err := conn.Channel(); err == nil {
						c.ExchangeDelete(exchange, false, false)
					}
					conn.Close()
				}
			})
			proxy, err := newCutProxy(env, amqpAddr)
			if err != nil {
				return nil, nil, err
			}
			return []string{"--emperor", fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", proxy.Port()),
				"--emperor-amqp-exchange", exchange, "--emperor-state-dir", env.Mkdir("state")}, proxy, nil
		},
		// Each publish on a connection of its own, straight to the broker.
		add: func(ctx context.Context, name, config string) error {
			conn, err := amqpDial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			if err := ch.Confirm(false); err != nil {
				return err
			}
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, name, false, false, amqp.Publishing{Body: []byte(config)})
			if err != nil {
				return err
			}
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return fmt.Errorf("publish of %s not confirmed: %v", name, err)
			}
			return nil
		},
		ready: []string{`msg=consuming`},
		down:  []string{"vassals keep running"},
		back:  []string{`msg=consuming`},
	}
}

func amqpDial() (*amqp.Connection, error) {
	return amqp.DialConfig("amqp://guest:guest@"+amqpAddr+"/", amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
}

// --- MongoDB wire (FerretDB) ---

func mongoOutage(env *Env) outageSource {
	coll := outageName("vassals")
	var client *mongo.Client
	return outageSource{
		kind: "mongodb",
		setup: func(ctx context.Context, first map[string]string) ([]string, *cutproxy.Proxy, error) {
			addr, err := startMongoWire(ctx, env)
			if err != nil {
				return nil, nil, err
			}
			client, err = mongo.Connect(options.Client().SetHosts([]string{addr}).SetDirect(true).SetTimeout(20 * time.Second))
			if err != nil {
				return nil, nil, err
			}
			env.Cleanup(func() {
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				client.Database("faults").Collection(coll).Drop(cctx)
				client.Disconnect(cctx)
			})
			for n, c := range first {
				if err := mongoInsert(ctx, client, coll, n, c); err != nil {
					return nil, nil, err
				}
			}
			proxy, err := newCutProxy(env, addr)
			if err != nil {
				return nil, nil, err
			}
			return []string{"--emperor", fmt.Sprintf("mongodb://127.0.0.1:%d,faults.%s,{}", proxy.Port(), coll)}, proxy, nil
		},
		add: func(ctx context.Context, name, config string) error {
			return mongoInsert(ctx, client, coll, name, config)
		},
		down: []string{"vassals keep running"},
	}
}

func mongoInsert(ctx context.Context, client *mongo.Client, coll, name, config string) error {
	_, err := client.Database("faults").Collection(coll).InsertOne(ctx, bson.D{
		{Key: "name", Value: name}, {Key: "config", Value: config}, {Key: "ts", Value: bson.NewDateTimeFromTime(time.Now())},
	})
	return err
}

// startMongoWire starts internal/mongowire (built as internal/testenv
// builds it, sharing its cache) storing into the scenario's directory, and
// stops it when the scenario ends. It returns its host:port.
func startMongoWire(ctx context.Context, env *Env) (string, error) {
	bin, err := testenv.MongoWireBinary() // the tests' build, from the same cache
	if err != nil {
		return "", fmt.Errorf("mongowire: %w", err)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-dir", env.Mkdir("mongo"))
	logf, err := os.Create(filepath.Join(env.Dir, "mongowire.log"))
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	env.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		u, err := url.Parse(strings.TrimSpace(l))
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("mongowire did not start: %q", l)
		}
		return u.Host, nil
	case <-time.After(60 * time.Second):
		return "", errors.New("mongowire did not start within 60 s")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
