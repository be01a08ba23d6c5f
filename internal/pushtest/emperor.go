package pushtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
)

// Emperor is an in-process Emperor whose vassals are real uWSGI, for the
// push monitors' end-to-end tests.
type Emperor struct {
	Logs    *Logs
	t       testing.TB
	notes   chan emperor.Note
	pending []emperor.Note
	stop    func()
}

// StartEmperor runs an Emperor over the monitors values open with mopts
// (Logger and Ready filled in); set, when not nil, adjusts its options. It
// stops (Ragnarok) at cleanup, or by Stop.
func StartEmperor(t testing.TB, values []string, mopts monitor.Options, set func(*emperor.Options)) *Emperor {
	t.Helper()
	uwsgi := testenv.UWSGI(t)
	e := &Emperor{Logs: &Logs{}, t: t, notes: make(chan emperor.Note, 4096)}
	ready := make(chan string, len(values))
	mopts.Logger, mopts.Ready = e.Logs.Logger(), ready
	var mons []monitor.Monitor
	for _, v := range values {
		m, err := monitor.Open(v, mopts)
		if err != nil {
			t.Fatal(err)
		}
		mons = append(mons, m)
	}
	opts := emperor.Options{
		Monitors:                 mons,
		Ready:                    ready,
		Binary:                   uwsgi,
		Env:                      os.Environ(),
		Logger:                   e.Logs.Logger(),
		PanicOnIllegalTransition: true,
		Notify: func(n emperor.Note) {
			select {
			case e.notes <- n:
			default:
				panic("test notes channel full")
			}
		},
	}
	if set != nil {
		set(&opts)
	}
	em, err := emperor.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.stop = RunEmperor(t, em)
	return e
}

// RunEmperor runs em until the returned stop is called or the test ends,
// whichever comes first: stop cancels it (Ragnarok) and waits up to a
// minute for Run to return, failing the test if it does not or if it
// returns an error.
func RunEmperor(t testing.TB, em *emperor.Emperor) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- em.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Emperor: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Error("the Emperor did not finish Ragnarok")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Stop runs Ragnarok and waits for the Emperor to return.
func (e *Emperor) Stop() { e.stop() }

// WaitNote returns the earliest note not yet returned that matches.
func (e *Emperor) WaitNote(what string, match func(emperor.Note) bool) emperor.Note {
	e.t.Helper()
	for i, n := range e.pending {
		if match(n) {
			e.pending = append(e.pending[:i], e.pending[i+1:]...)
			return n
		}
	}
	deadline := time.After(Wait)
	for {
		select {
		case n := <-e.notes:
			if match(n) {
				return n
			}
			e.pending = append(e.pending, n)
		case <-deadline:
			var seen strings.Builder
			for _, n := range e.pending {
				fmt.Fprintf(&seen, "\n  %s: %s -> %s %s", n.Key.Name, n.From, n.To, n.Reason)
			}
			e.t.Fatalf("timed out waiting for %s; notes:%s\nlog:\n%s", what, seen.String(), e.Logs.String())
		}
	}
}

// WaitState waits for the vassal name to enter state to.
func (e *Emperor) WaitState(name string, to emperor.State) emperor.Note {
	e.t.Helper()
	return e.WaitNote(fmt.Sprintf("%s %s", name, to), func(n emperor.Note) bool {
		return !n.IsByte && n.Key.Name == name && n.To == to
	})
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Get returns the status code and the status line plus body of GET url.
func Get(url string) (int, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Status + "\n" + string(b), err
}

// WaitServing waits until url answers 200 with a body containing want.
func WaitServing(t testing.TB, url, want string) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		code, body, err := Get(url)
		if err == nil && code == 200 && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served %q: last %d %q, err %v", url, want, code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitDown waits until nothing answers on url.
func WaitDown(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		if _, _, err := Get(url); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// UWSGIConfig is a real uWSGI vassal's config answering GET / on port with
// 200 and the status text "served by NAME" from uWSGI's internal router (no
// plugin, no file to read, so it runs as any user).
func UWSGIConfig(port int, name string) string {
	return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nmaster = true\nprocesses = 1\nroute-run = return:200 served by %s\n", port, name)
}
