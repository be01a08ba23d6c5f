package main

// The push section: time from an AMQP publish or a ZeroMQ push to the
// pushed vassal serving, for one Emperor and for three bound to the same
// exchange (a cluster-synchronized deploy on one machine).

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-zeromq/zmq4"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

const (
	pushAMQPAddr  = "127.0.0.1:5672"
	pushReady     = 30 * time.Second
	pushServeWait = 30 * time.Second
)

// pushEmperor is one Emperor process of the push section.
type pushEmperor struct {
	cmd      *exec.Cmd
	log      string
	port     int    // its vassal's http-socket ($(BENCH_PORT) in the config)
	endpoint string // its zmq PULL socket
}

// runPushSection measures every push row and returns its table.
func runPushSection(s *settings, work string, reps int) *table {
	t := &table{head: []string{"metric", "uwsgi p50", "uwsgi p90", "ours p50", "ours p90", "note"}}
	amqpOK := ""
	if c, err := net.DialTimeout("tcp", pushAMQPAddr, 2*time.Second); err != nil {
		amqpOK = "RabbitMQ unreachable on " + pushAMQPAddr
	} else {
		c.Close()
	}
	dir := mkdir(work, "push")
	port := s.basePort + 10100 // past both Emperors' vassal ranges
	for _, transport := range []string{"amqp", "zmq"} {
		for _, n := range []int{1, 3} {
			label := fmt.Sprintf("%s → serving, %d Emperor(s)", map[string]string{"amqp": "AMQP publish", "zmq": "ZeroMQ push"}[transport], n)
			row := []string{label}
			var notes []string
			for _, kind := range []string{"uwsgi", "ours"} {
				if s.only != "both" && s.only != kind {
					row = append(row, "-", "-")
					continue
				}
				if transport == "amqp" && amqpOK != "" {
					row = append(row, "n/a", "-")
					notes = append(notes, amqpOK)
					continue
				}
				v, note := pushScenario(s, dir, kind, transport, n, reps, &port)
				if note != "" {
					notes = append(notes, kind+": "+note)
				}
				if len(v) == 0 {
					row = append(row, "n/a", "-")
					continue
				}
				row = append(row, format(percentile(v, 50), unitMS), format(percentile(v, 90), unitMS))
			}
			t.rows = append(t.rows, append(row, strings.Join(notes, "; ")))
		}
	}
	t.notes = append(t.notes,
		"uWSGI: uwsgi-core's emperor_amqp and emperor_zeromq plugins (uwsgi --plugin emperor_amqp --emperor amqp://HOST:PORT, exchange uwsgi.emperor, guest/guest)",
		"each sample: from the publish/push of a new direct config to the last Emperor's real uWSGI vassal answering 200 (internal router) on its port (http-socket = 127.0.0.1:$(BENCH_PORT), set per Emperor); one unmeasured warm-up first",
		"three Emperors share one exchange (AMQP: one publish reaches all); ZeroMQ is point to point, so the pusher sends one message to each Emperor's PULL socket")
	return t
}

// pushScenario starts n Emperors of kind (ours or uwsgi) on transport,
// pushes reps configs one after the other and returns the milliseconds
// until all served.
func pushScenario(s *settings, dir, kind, transport string, n, reps int, port *int) ([]float64, string) {
	exchange := fmt.Sprintf("emperor.bench.%d", os.Getpid())
	if kind == "uwsgi" {
		exchange = "uwsgi.emperor" // fixed in uWSGI
	}
	var ems []*pushEmperor
	defer func() {
		for _, e := range ems {
			e.stop()
		}
	}()
	for i := range n {
		*port++
		e := &pushEmperor{port: *port, log: filepath.Join(s.logDir, fmt.Sprintf("push-%s-%s-%d-%d.log", kind, transport, n, i))}
		*port++
		e.endpoint = fmt.Sprintf("tcp://127.0.0.1:%d", *port)
		bin, args := s.emperor, []string{"--binary-path", s.uwsgi, "--emperor-amqp-exchange", exchange,
			"--emperor-state-dir", mkdir(dir, fmt.Sprintf("state-%s-%d-%d", transport, n, i))}
		if kind == "uwsgi" {
			bin, args = s.uwsgi, []string{"--plugin", "emperor_" + map[string]string{"amqp": "amqp", "zmq": "zeromq"}[transport]}
		}
		if transport == "amqp" {
			args = append(args, "--emperor", "amqp://"+pushAMQPAddr)
			if kind == "ours" {
				args[len(args)-1] = "amqp://guest:guest@" + pushAMQPAddr + "/"
			}
		} else {
			args = append(args, "--emperor", "zmq://"+e.endpoint)
		}
		if err := e.start(bin, args, dir); err != nil {
			return nil, err.Error()
		}
		ems = append(ems, e)
	}
	for _, e := range ems {
		want := map[string]string{"amqp": "consuming", "zmq": "listening"}[transport]
		if kind == "uwsgi" {
			want = "*** starting uWSGI Emperor ***"
		}
		if err := waitLog(e.log, want, time.Now().Add(pushReady)); err != nil {
			return nil, err.Error()
		}
	}
	send, closeSender, err := newSender(transport, exchange, ems)
	if err != nil {
		return nil, err.Error()
	}
	defer closeSender()
	var v []float64
	for rep := -1; rep < reps; rep++ { // rep -1: warm-up, not measured
		name := fmt.Sprintf("bench-%d.ini", rep+1)
		conf := "[uwsgi]\nhttp-socket = 127.0.0.1:$(BENCH_PORT)\nmaster = true\nprocesses = 1\nroute-run = return:200\n"
		began := time.Now()
		if err := send(name, conf); err != nil {
			return v, fmt.Sprintf("rep %d: %v", rep, err)
		}
		last := began
		for _, e := range ems {
			at, err := waitServing(e.port, time.Millisecond, began.Add(pushServeWait))
			if err != nil {
				return v, fmt.Sprintf("rep %d: %v%s (log %s)", rep, err, logError(e.log), e.log)
			}
			if at.After(last) {
				last = at
			}
		}
		if rep >= 0 {
			v = append(v, ms(last.Sub(began)))
		}
		progress("push", "%s %s x%d rep %d: all serving after %.1f ms", kind, transport, n, rep, ms(last.Sub(began)))
		if err := send(name, ""); err != nil {
			return v, fmt.Sprintf("rep %d: destroy: %v", rep, err)
		}
		for _, e := range ems {
			deadline := time.Now().Add(pushServeWait)
			for !portFree(e.port) {
				if time.Now().After(deadline) {
					return v, fmt.Sprintf("rep %d: port %d still busy after destroy", rep, e.port)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	return v, ""
}

func (e *pushEmperor) start(bin string, args []string, dir string) error {
	f, err := os.Create(e.log)
	if err != nil {
		return err
	}
	defer f.Close()
	e.cmd = exec.Command(bin, args...)
	e.cmd.Dir = dir
	e.cmd.Env = append(os.Environ(), fmt.Sprintf("BENCH_PORT=%d", e.port))
	e.cmd.Stdout, e.cmd.Stderr = f, f
	return e.cmd.Start()
}

func (e *pushEmperor) stop() {
	e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		e.cmd.Process.Kill()
		<-done
	}
}

// waitLog waits until the file at path contains want.
func waitLog(path, want string, deadline time.Time) error {
	for {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %q", path, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newSender returns a function that sends a direct config (empty: destroy)
// to every Emperor.
func newSender(transport, exchange string, ems []*pushEmperor) (func(name, conf string) error, func(), error) {
	if transport == "amqp" {
		conn, err := amqp091.Dial("amqp://guest:guest@" + pushAMQPAddr + "/")
		if err != nil {
			return nil, nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.ExchangeDeclare(exchange, "fanout", false, false, false, false, nil)
		}
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		send := func(name, conf string) error {
			return ch.PublishWithContext(context.Background(), exchange, name, false, false, amqp091.Publishing{Body: []byte(conf)})
		}
		return send, func() { conn.Close() }, nil
	}
	var socks []zmq4.Socket
	closeAll := func() {
		for _, s := range socks {
			s.Close()
		}
	}
	for _, e := range ems {
		s := zmq4.NewPush(context.Background())
		if err := s.Dial(e.endpoint); err != nil {
			closeAll()
			return nil, nil, err
		}
		socks = append(socks, s)
	}
	send := func(name, conf string) error {
		for _, s := range socks {
			msg := zmq4.NewMsgFrom([]byte("touch"), []byte(name), []byte(conf))
			if conf == "" {
				msg = zmq4.NewMsgFrom([]byte("destroy"), []byte(name))
			}
			if err := s.SendMulti(msg); err != nil {
				return err
			}
		}
		return nil
	}
	return send, closeAll, nil
}

// runPushOnly measures and prints the push table alone (-push-only).
func runPushOnly(s *settings) int {
	work, err := os.MkdirTemp("", "emperor-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "emperor-bench:", err)
		return 1
	}
	defer os.RemoveAll(work)
	if s.logDir == "" {
		s.logDir = mkdir(work, "logs")
	} else {
		mkdir(s.logDir, ".")
	}
	t := runPushSection(s, work, s.reps)
	fmt.Print(t.text())
	if s.md != "" {
		if err := os.WriteFile(s.md, []byte(t.markdown()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "emperor-bench:", err)
			return 1
		}
	}
	return 0
}

// logError returns the last error-looking line of the log at path, as
// ": LINE", or "".
func logError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.ToLower(lines[i])
		if strings.Contains(l, "error") || strings.Contains(l, "unable") || strings.Contains(l, "failed") {
			return ": " + strings.TrimSpace(lines[i])
		}
	}
	return ""
}
