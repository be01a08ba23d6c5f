// Package emperortest runs an Emperor in a test: the one harness every
// package's tests import. It builds emperor.Options from a Setup, runs the
// Emperor until the test ends, records every note (transitions and protocol
// bytes) for the test to wait on, captures the log, and stops the Emperor
// (Ragnarok) at cleanup. It also holds the test binary's role registry
// (roles.go) and the waits for JSON reports and HTTP answers the vassals'
// tests share.
package emperortest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
)

// Setup says what Start runs. The zero value needs a monitor and a Binary
// or a Role.
type Setup struct {
	// Monitors are monitor values (a directory, glob://..., pg://...)
	// Start opens with MonitorOptions, whose Logger and Ready it fills in
	// and whose Freq defaults to a second.
	Monitors       []string
	MonitorOptions monitor.Options
	// Opened are monitors the test built itself, such as fakes. They get
	// no Ready channel, so with any of them the first scan never completes
	// (WaitScanned fails): spawns skip the throttle.
	Opened []monitor.Monitor
	// Role, when set, makes the test binary the vassals, playing that role
	// (see Register). Binary is argv[0] of every vassal: os.Args[0] by
	// default when Role is set.
	Role   string
	Binary string
	// Options, when set, adjusts the options last.
	Options func(*emperor.Options)
	// Before, when set, is given the Emperor before it runs (the emperor
	// package's own tests inject faults with it).
	Before func(*emperor.Emperor)
}

// Emperor is an Emperor running for a test.
type Emperor struct {
	*emperor.Emperor
	// Notes holds every note the Emperor sent, in order.
	Notes *Inbox[emperor.Note]
	// Log captures the Emperor's and its monitors' log.
	Log *testkit.Log
	// Signals delivers signals to the Emperor as if the process got them.
	Signals chan os.Signal

	t       testing.TB
	scanned chan struct{} // closed once every monitor reported its first scan
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run returned, with err set
	err     error
	stop    sync.Once
}

// Start runs an Emperor for s until the test ends (or Stop).
func Start(t testing.TB, s Setup) *Emperor {
	t.Helper()
	log := &testkit.Log{}
	e := &Emperor{Notes: &Inbox[emperor.Note]{}, Log: log, Signals: make(chan os.Signal, 4), t: t,
		scanned: make(chan struct{}), done: make(chan struct{})}
	// The monitors report their first scan to the harness, which passes
	// each report on: once the last is passed, the Emperor holds it.
	fromMonitors, toEmperor := make(chan string, len(s.Monitors)), make(chan string)
	mons := append([]monitor.Monitor(nil), s.Opened...)
	mopts := s.MonitorOptions
	mopts.Logger, mopts.Ready = log.Logger(), fromMonitors
	if mopts.Freq == 0 {
		mopts.Freq = time.Second
	}
	for _, v := range s.Monitors {
		m, err := monitor.Open(v, mopts)
		if err != nil {
			t.Fatal(err)
		}
		mons = append(mons, m)
	}
	opts := emperor.Options{
		Monitors:                 mons,
		Ready:                    toEmperor,
		Binary:                   s.Binary,
		Env:                      os.Environ(),
		Signals:                  e.Signals,
		Logger:                   log.Logger(),
		Notify:                   e.Notes.Add,
		PanicOnIllegalTransition: true,
	}
	if s.Role != "" {
		opts.Env = RoleEnviron(s.Role)
		if opts.Binary == "" {
			opts.Binary = os.Args[0]
		}
	}
	if s.Options != nil {
		s.Options(&opts)
	}
	em, err := emperor.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.Emperor = em
	if s.Before != nil {
		s.Before(em)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		for range mons {
			select {
			case id := <-fromMonitors:
				select {
				case toEmperor <- id:
				case <-e.done:
					return
				}
			case <-e.done:
				return
			}
		}
		close(e.scanned)
	}()
	go func() {
		e.err = em.Run(ctx)
		close(e.done)
	}()
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("Emperor: %v", err)
		}
		if t.Failed() {
			t.Logf("Emperor log:\n%s", log)
		}
	})
	return e
}

// Stop runs Ragnarok, if Run has not returned yet, and returns Run's
// error; the test fails if Run does not return within testkit.Deadline.
func (e *Emperor) Stop() error {
	e.t.Helper()
	e.stop.Do(e.cancel)
	return e.Wait()
}

// Wait waits for Run to return on its own (after SIGTERM, say) and returns
// its error; the test fails if it does not within testkit.Deadline.
func (e *Emperor) Wait() error {
	e.t.Helper()
	select {
	case <-e.done:
		return e.err
	case <-time.After(testkit.Deadline):
		e.t.Fatalf("the Emperor did not finish Ragnarok within %s", testkit.Deadline)
		return nil
	}
}

// WaitScanned waits until the Emperor applied every monitor's first scan:
// from then on, spawns go through the throttle.
func (e *Emperor) WaitScanned() {
	e.t.Helper()
	select {
	case <-e.scanned:
	case <-time.After(testkit.Deadline):
		e.t.Fatalf("the monitors' first scan did not complete within %s", testkit.Deadline)
	}
	// The Emperor took the last report in one turn of its loop, and answers
	// this query in a later one.
	s, err := e.Snapshot(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if !s.Scanned {
		e.t.Fatal("the Emperor took every monitor's first scan but its stats say it did not")
	}
}

// WaitNote returns the earliest note not taken yet that matches, and takes
// it; notes that do not match stay for later waits.
func (e *Emperor) WaitNote(what string, match func(emperor.Note) bool) emperor.Note {
	e.t.Helper()
	return e.Notes.Wait(e.t, what, match)
}

// WaitState waits for the vassal name to move into state to.
func (e *Emperor) WaitState(name string, to emperor.State) emperor.Note {
	e.t.Helper()
	return e.WaitNote(fmt.Sprintf("%s → %s", name, to), IsState(name, to))
}

// IsState matches the vassal name moving into state to.
func IsState(name string, to emperor.State) func(emperor.Note) bool {
	return func(n emperor.Note) bool { return n.Key.Name == name && !n.IsByte && n.From != n.To && n.To == to }
}

// IsDeath matches the Emperor noting that a process of the vassal name died
// and that it waits to respawn it.
func IsDeath(name string) func(emperor.Note) bool {
	return func(n emperor.Note) bool {
		return n.Key.Name == name && n.To == emperor.Waiting && strings.HasPrefix(n.Reason, "died")
	}
}

// IsByte matches the vassal name sending protocol byte b.
func IsByte(name string, b byte) func(emperor.Note) bool {
	return func(n emperor.Note) bool { return n.Key.Name == name && n.IsByte && n.Byte == b }
}

// WaitBytes waits until each named vassal sent protocol byte b (taking one
// such note per name).
func (e *Emperor) WaitBytes(b byte, names ...string) {
	e.t.Helper()
	for _, name := range names {
		e.WaitNote(fmt.Sprintf("byte %d from %s", b, name), IsByte(name, b))
	}
}
