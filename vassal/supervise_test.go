package vassal_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/emperor-dev/emperor/internal/testenv"
)

// hammer asks port for answers from 2 clients until the returned stop is
// called; stop returns the failures.
func hammer(port int) (stop func() []error) {
	var (
		done     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				if _, err := get(port); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			}
		}()
	}
	return func() []error {
		done.Store(true)
		wg.Wait()
		return failures
	}
}

func TestSupervise_Recycle(t *testing.T) {
	needBinaries(t)
	for _, opt := range []string{"max-worker-lifetime = 1", "reload-on-rss = 1"} {
		t.Run(opt, func(t *testing.T) {
			port := testenv.FreePort(t)
			ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nworker-reload-mercy = 5\n%s\n", port, bins.hello, opt))
			v := startVassal(t, []string{"--ini", ini}, nil)
			first := waitGet(t, port, startDeadline, nil)
			stop := hammer(port)
			next := waitGet(t, port, startDeadline, func(h hello) bool { return h.pid != first.pid })
			waitFor(t, exitDeadline, "the old worker to exit", func() bool { return !alive(first.pid) })
			for _, err := range stop() {
				t.Errorf("request failed while a worker was replaced: %v", err)
			}
			if !alive(next.pid) {
				t.Errorf("replacement %d is not running", next.pid)
			}
			if !containsAll(v.output.String(), "replacing worker", "replacement ready") {
				t.Errorf("the replacement is not logged")
			}
		})
	}
}

func TestSupervise_Signals(t *testing.T) {
	needBinaries(t)
	for _, tt := range []struct {
		name, conf string
		sig        syscall.Signal
	}{
		{"SIGHUP reloads", "", syscall.SIGHUP},
		{"SIGTERM reloads with die-on-term = false", "die-on-term = false\n", syscall.SIGTERM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\n%s", port, bins.hello, tt.conf))
			v := startVassal(t, []string{"--ini", ini}, nil)
			first := waitGet(t, port, startDeadline, nil)
			if err := v.cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			waitGet(t, port, startDeadline, func(h hello) bool { return h.pid != first.pid })
			waitFor(t, exitDeadline, "the old worker to exit", func() bool { return !alive(first.pid) })
			select {
			case <-v.exited:
				t.Fatal("the vassal exited")
			default:
			}
			v.cmd.Process.Signal(syscall.SIGINT)
			if code := v.wait(t, exitDeadline); code != 0 {
				t.Errorf("exit status %d after SIGINT, want 0", code)
			}
		})
	}
}

// TestSupervise_RecycleOnNotify: a replacement that never answers a probe
// but notifies READY=1 takes over from the old worker.
func TestSupervise_RecycleOnNotify(t *testing.T) {
	needBinaries(t)
	if _, err := lookPerl(); err != nil {
		testenv.Missing(t, "perl: "+err.Error())
	}
	dir := t.TempDir()
	script := writeFile(t, dir, "notify.pl", notifyWorker)
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nsocket = 127.0.0.1:%d\nworker-exec = perl %s\nenv = READY=1\nmax-worker-lifetime = 1\nworker-reload-mercy = 5\n", testenv.FreePort(t), script))
	v := startVassal(t, []string{"--ini", ini}, nil)
	var first int
	waitFor(t, startDeadline, "the first worker", func() bool {
		first = workerPid(v.output.String(), 1)
		return first != 0
	})
	waitFor(t, startDeadline, "the replacement's READY=1", func() bool {
		return containsAll(v.output.String(), "replacement worker notified READY=1")
	})
	waitFor(t, exitDeadline, "the old worker to exit", func() bool { return !alive(first) })
}
