package main

// The reload-under-load row of the vassal runtime section.

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	vbClients        = 4
	vbLoadBefore     = time.Second // load before byte 1
	vbLoadAfter      = time.Second // load after the first new worker answered
	vbRequestTimeout = 5 * time.Second
	vbReloadDeadline = 60 * time.Second // byte 1 → a new worker answers, at most
)

// vbReloadResult is the reload row of one column.
type vbReloadResult struct {
	requests, failed int
	p99, max         float64 // ms, over every request of the run
	switchMS         float64 // byte 1 → first answer from a new worker
	oldGoneMS        float64 // byte 1 → every old worker exited (+Inf: not within the deadline)
	newWorker        bool
	failures         []string // the first few
}

// vbGet asks the hello app on port once, on a fresh connection, and
// returns the pid that answered.
func vbGet(port int) (int, error) {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), vbRequestTimeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(vbRequestTimeout))
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")); err != nil {
		return 0, err
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("status line: %w", err)
	}
	if f := strings.Fields(status); len(f) < 2 || f[1] != "200" {
		return 0, fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	resp, err := io.ReadAll(br)
	if err != nil {
		return 0, fmt.Errorf("body: %w", err)
	}
	_, body, ok := strings.Cut(string(resp), "\r\n\r\n")
	if !ok {
		return 0, fmt.Errorf("no end of headers in %q", resp)
	}
	var name string
	var pid int
	if _, err := fmt.Sscanf(body, "hello from %s pid %d", &name, &pid); err != nil {
		return 0, fmt.Errorf("answer %q: %w", body, err)
	}
	return pid, nil
}

// vbLoad is the clients of one reload run.
type vbLoad struct {
	mu        sync.Mutex
	latencies []float64
	failed    int
	failures  []string
	old       map[int]bool // workers before the reload; nil until byte 1
	firstNew  chan int     // the first answer from a worker not in old
	sawNew    bool
	stop      chan struct{}
	wg        sync.WaitGroup
}

func vbStartLoad(port int) *vbLoad {
	l := &vbLoad{firstNew: make(chan int, 1), stop: make(chan struct{})}
	for range vbClients {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				t0 := time.Now()
				pid, err := vbGet(port)
				l.record(ms(time.Since(t0)), pid, err)
			}
		})
	}
	return l
}

func (l *vbLoad) record(lat float64, pid int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.latencies = append(l.latencies, lat)
	if err != nil {
		l.failed++
		if len(l.failures) < 5 {
			l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
		return
	}
	if l.old != nil && !l.old[pid] && !l.sawNew {
		l.sawNew = true
		l.firstNew <- pid
	}
}

// vbReload starts the vassal under a fake Emperor, loads it, sends byte 1
// and measures the run.
func vbReload(k *vbKind, ini, dir, logPath string, port int) (*vbReloadResult, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	emperorEnd := os.NewFile(uintptr(fds[0]), "emperor-end")
	vassalEnd := os.NewFile(uintptr(fds[1]), "vassal-end")
	defer emperorEnd.Close()
	p, err := vbStart(k.argv(ini), dir, logPath, []*os.File{vassalEnd}, []string{"UWSGI_EMPEROR_FD=3"})
	vassalEnd.Close()
	if err != nil {
		return nil, err
	}
	defer p.stop(port)
	// The vassal's bytes, for the progress lines; read so it never blocks.
	bytesCh := make(chan byte, 64)
	go func() {
		var b [1]byte
		for {
			if _, err := emperorEnd.Read(b[:]); err != nil {
				close(bytesCh)
				return
			}
			select {
			case bytesCh <- b[0]:
			default:
			}
		}
	}()
	if _, err := waitServing(port, time.Millisecond, p.started.Add(vbStartDeadline)); err != nil {
		return nil, err
	}

	l := vbStartLoad(port)
	time.Sleep(vbLoadBefore)
	old := map[int]bool{p.pid: true}
	var oldWorkers []*pidfd // handles on every old process but the vassal's own
	for _, pid := range descendants(p.pid) {
		old[pid] = true
		if h, err := openPidfd(pid); err == nil {
			oldWorkers = append(oldWorkers, h)
		}
	}
	defer func() {
		for _, h := range oldWorkers {
			h.Close()
		}
	}()
	l.mu.Lock()
	l.old = old
	l.mu.Unlock()
	t0 := time.Now()
	if _, err := emperorEnd.Write([]byte{1}); err != nil {
		close(l.stop)
		l.wg.Wait()
		return nil, fmt.Errorf("sending byte 1: %w", err)
	}
	r := &vbReloadResult{}
	var newPid int
	select {
	case newPid = <-l.firstNew:
		r.newWorker = true
		r.switchMS = ms(time.Since(t0))
		// The reload is over once every old worker exited too: the load
		// goes on until vbLoadAfter after the later of the two.
		after := time.Now().Add(vbLoadAfter)
		if err := waitAllExit(oldWorkers, t0.Add(vbReloadDeadline), func(_ *pidfd, t time.Time) {
			r.oldGoneMS = max(r.oldGoneMS, ms(t.Sub(t0)))
		}); err != nil {
			r.oldGoneMS = inf
		} else {
			after = vbLater(after, t0.Add(time.Duration(r.oldGoneMS*float64(time.Millisecond))).Add(vbLoadAfter))
		}
		time.Sleep(time.Until(after))
	case <-time.After(vbReloadDeadline):
	}
	close(l.stop)
	l.wg.Wait()

	l.mu.Lock()
	r.requests = len(l.latencies)
	r.failed = l.failed
	r.failures = l.failures
	if len(l.latencies) > 0 {
		r.p99 = percentile(l.latencies, 99)
		r.max = slices.Max(l.latencies)
	}
	l.mu.Unlock()
	var got []string
	for len(bytesCh) > 0 {
		got = append(got, strconv.Itoa(int(<-bytesCh)))
	}
	progress("vassl", "%s reload under load: %d requests, %d failed, p99 %.1f ms, max %.1f ms; new worker %d after %.1f ms; old %v all exited after %.1f ms; vassal bytes %s",
		k.key, r.requests, r.failed, r.p99, r.max, newPid, r.switchMS, vbKeys(old), r.oldGoneMS, strings.Join(got, ","))
	for _, f := range r.failures {
		progress("vassl", "%s reload failure: %s", k.key, f)
	}
	if !r.newWorker {
		return r, fmt.Errorf("%w within %v of byte 1", errVBNoNewWorker, vbReloadDeadline)
	}
	if math.IsInf(r.oldGoneMS, 1) {
		return r, fmt.Errorf("old workers still running %v after byte 1", vbReloadDeadline)
	}
	return r, nil
}

func vbLater(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func vbKeys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
