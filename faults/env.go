package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env is what a scenario works with: the binaries, a private directory
// removed after it, and cleanups run when it ends, whatever happened.
type Env struct {
	// Emperor, Vassal and Hello are the built binaries; UWSGI is the real
	// uWSGI ("" when it is not installed).
	Emperor, Vassal, Hello, UWSGI string
	// Short: the quick version (CI).
	Short bool
	// Dir is the scenario's own directory (the suite's root for the Env
	// main holds).
	Dir string

	mu       sync.Mutex
	cleanups []func()
	seq      int
}

func newEnv(bin string, short bool) (*Env, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	e := &Env{Emperor: filepath.Join(abs, "emperor"), Vassal: filepath.Join(abs, "vassal"), Hello: filepath.Join(abs, "hello"), Short: short}
	for _, p := range []string{e.Emperor, e.Vassal, e.Hello} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w (run make build first, or pass -bin)", err)
		}
	}
	if p, err := exec.LookPath("uwsgi"); err == nil {
		e.UWSGI = p
	}
	if e.Dir, err = os.MkdirTemp("", "emperor-faults-"); err != nil {
		return nil, err
	}
	return e, nil
}

// Close removes the suite's directory.
func (e *Env) Close() { os.RemoveAll(e.Dir) }

// scenario is an Env for one scenario, in a subdirectory of the suite's.
func (e *Env) scenario(name string) *Env {
	d := filepath.Join(e.Dir, name)
	os.MkdirAll(d, 0o755)
	return &Env{Emperor: e.Emperor, Vassal: e.Vassal, Hello: e.Hello, UWSGI: e.UWSGI, Short: e.Short, Dir: d}
}

// Cleanup runs fn when the scenario ends, the last registered first.
func (e *Env) Cleanup(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, fn)
}

func (e *Env) cleanup() {
	e.mu.Lock()
	fns := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// Mkdir makes a directory below the scenario's and returns its path.
func (e *Env) Mkdir(name string) string {
	d := filepath.Join(e.Dir, name)
	os.MkdirAll(d, 0o755)
	return d
}

// Bound is how a scenario checks a figure against a speed bound: in a full
// run the bound must hold; in a -short run (CI, on a machine other test
// runs load) the figure is printed but the bound is not asserted, because
// a busy box can miss any timing. What is lost, left running or crashed
// is asserted in both.
func (e *Env) Bound(within bool) bool { return within || e.Short }

// Count picks the full or the short figure.
func (e *Env) Count(full, short int) int {
	if e.Short {
		return short
	}
	return full
}

// Emperor is a running Emperor process, its stderr in a log file.
type Emperor struct {
	Cmd  *exec.Cmd
	Log  string // path of its stderr
	done chan struct{}
	err  error
}

// StartEmperor starts bin/emperor with args; it is stopped (SIGTERM, then
// SIGKILL after 15 s) when the scenario ends.
func (e *Env) StartEmperor(args ...string) (*Emperor, error) {
	e.mu.Lock()
	e.seq++
	logPath := filepath.Join(e.Dir, fmt.Sprintf("emperor-%d.log", e.seq))
	e.mu.Unlock()
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(e.Emperor, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	em := &Emperor{Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		em.err = cmd.Wait()
		close(em.done)
	}()
	e.Cleanup(func() { em.Stop(15 * time.Second) })
	return em, nil
}

// Pid is the Emperor's pid.
func (em *Emperor) Pid() int { return em.Cmd.Process.Pid }

// Exited is closed when the Emperor has exited.
func (em *Emperor) Exited() <-chan struct{} { return em.done }

// Stop sends SIGTERM (Ragnarok) and SIGKILL after grace; it returns the
// exit error.
func (em *Emperor) Stop(grace time.Duration) error {
	select {
	case <-em.done:
		return em.err
	default:
	}
	em.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-em.done:
	case <-time.After(grace):
		em.Cmd.Process.Kill()
		<-em.done
	}
	return em.err
}

// Kill SIGKILLs the Emperor and waits for it.
func (em *Emperor) Kill() {
	em.Cmd.Process.Kill()
	<-em.done
}

// LogSize is where the log ends now: WaitLog from there sees only what
// comes after.
func (em *Emperor) LogSize() int64 {
	st, err := os.Stat(em.Log)
	if err != nil {
		return 0
	}
	return st.Size()
}

// WaitLog waits for a line holding every part, from byte offset from of
// the log on, and returns it.
func (em *Emperor) WaitLog(ctx context.Context, from int64, parts ...string) (string, error) {
	for {
		if line, ok := findLine(em.Log, from, parts); ok {
			return line, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no log line with %q: %w", parts, ctx.Err())
		case <-em.done:
			if line, ok := findLine(em.Log, from, parts); ok {
				return line, nil
			}
			return "", fmt.Errorf("the Emperor exited (%v) before a log line with %q", em.err, parts)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// CountLog counts the lines holding every part.
func (em *Emperor) CountLog(parts ...string) int {
	n := 0
	eachLine(em.Log, 0, func(l string) bool {
		if containsAll(l, parts) {
			n++
		}
		return true
	})
	return n
}

func findLine(path string, from int64, parts []string) (found string, ok bool) {
	eachLine(path, from, func(l string) bool {
		if containsAll(l, parts) {
			found, ok = l, true
			return false
		}
		return true
	})
	return found, ok
}

// eachLine calls fn on each line of the file from byte offset from on,
// until fn returns false. A line longer than 1 MiB (a vassal echoing a huge
// fuzzed config) is cut to its first MiB, never the end of the reading.
func eachLine(path string, from int64, fn func(string) bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadSlice('\n')
		text := strings.TrimSuffix(string(line), "\n")
		for errors.Is(err, bufio.ErrBufferFull) { // skip the rest of an overlong line
			_, err = r.ReadSlice('\n')
		}
		if len(text) > 0 || err == nil {
			if !fn(text) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// Field reads key=value from a slog text line.
func Field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// FreePort is a loopback TCP port nobody listened on a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// getTimeout bounds Get: 2 s, or 10 s in a -short (CI) run, where the
// machine may be loaded by other test runs.
var getTimeout = 2 * time.Second

// Get fetches a URL within getTimeout and returns the body.
func Get(url string) (string, error) {
	c := http.Client{Timeout: getTimeout}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Stats reads the Emperor's stats JSON from addr (a unix socket path, or
// host:port).
func Stats(addr string) ([]byte, error) {
	network := "unix"
	if !strings.Contains(addr, "/") {
		network = "tcp"
	}
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return io.ReadAll(c)
}

// Poll calls ok every 10 ms until it is true or ctx ends; it reports how
// long that took and whether ok became true.
func Poll(ctx context.Context, ok func() bool) (time.Duration, bool) {
	began := time.Now()
	for {
		if ok() {
			return time.Since(began), true
		}
		select {
		case <-ctx.Done():
			return time.Since(began), false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Running reports whether a process runs (a zombie does not).
func Running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// Descendants lists the processes below pid, from /proc.
func Descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// errSkip marks a scenario that cannot run here (a missing peer).
var errSkip = errors.New("cannot run here")

// Ms formats a duration in milliseconds.
func Ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}
