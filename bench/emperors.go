package main

// Starting and stopping each Emperor, and finding its vassals.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// emperorKind is one of the two Emperors under test.
type emperorKind struct {
	name string // "uwsgi" or "ours"
	// argv runs the Emperor on a directory of vassal configs, with its
	// defaults otherwise.
	argv func(dir string) []string
	// loyal matches the log line saying the vassal with this config file
	// name announced its loyalty.
	loyal func(config string) *regexp.Regexp
	// portOffset keeps each Emperor's vassals on their own ports.
	portOffset int
}

func uwsgiKind(uwsgi string) *emperorKind {
	return &emperorKind{
		name: "uwsgi",
		argv: func(dir string) []string { return []string{uwsgi, "--emperor", dir} },
		loyal: func(config string) *regexp.Regexp {
			return regexp.MustCompile(`\[emperor\] vassal ` + regexp.QuoteMeta(config) + ` is now loyal`)
		},
		portOffset: 0,
	}
}

func oursKind(emperor, uwsgi string) *emperorKind {
	return &emperorKind{
		name: "ours",
		argv: func(dir string) []string { return []string{emperor, "--dir", dir, "--binary-path", uwsgi} },
		loyal: func(config string) *regexp.Regexp {
			return regexp.MustCompile(`msg="vassal is loyal" vassal=` + regexp.QuoteMeta(config) + `( |$)`)
		},
		portOffset: 5000,
	}
}

// running is one started Emperor.
type running struct {
	kind    *emperorKind
	dir     string
	logPath string
	cmd     *exec.Cmd
	pid     int
	handle  *pidfd
	started time.Time
	// vassalExe is the resolved binary of a vassal master after exec: the
	// bench tells a vassal from a child that has not exec'ed yet by it.
	vassalExe string
}

// current is the Emperor running now, for the interrupt handler.
var current struct {
	sync.Mutex
	r *running
}

// startEmperor starts kind on dir, its stdout and stderr (and its vassals',
// which inherit them) going to logPath.
func startEmperor(kind *emperorKind, dir, logPath, vassalExe string) (*running, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own copy
	argv := kind.argv(dir)
	fmt.Fprintf(logf, "### bench: %s start %q\n", time.Now().Format(time.RFC3339Nano), argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Our own group, so a ^C at the terminal reaches only the bench,
		// which then stops the Emperor cleanly; and Ragnarok if the bench
		// dies.
		Setpgid:   true,
		Pdeathsig: syscall.SIGTERM,
	}
	r := &running{kind: kind, dir: dir, logPath: logPath, cmd: cmd, vassalExe: vassalExe}
	current.Lock()
	defer current.Unlock()
	r.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r.pid = cmd.Process.Pid
	r.handle, err = openPidfd(r.pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	current.r = r
	return r, nil
}

// masters lists the Emperor's vassal masters: its children that run the
// vassal binary (a child that has not exec'ed yet does not count).
func (r *running) masters() []int {
	var out []int
	for _, p := range children(r.pid) {
		if exePath(p) == r.vassalExe {
			out = append(out, p)
		}
	}
	return out
}

// masterOf is the vassal master running config (a file name in r.dir), or
// 0. Both Emperors start a vassal as "BINARY --ini NAME" in its directory.
func (r *running) masterOf(config string) int {
	for _, p := range r.masters() {
		args := cmdline(p)
		if slices.Contains(args, config) || slices.Contains(args, filepath.Join(r.dir, config)) {
			return p
		}
	}
	return 0
}

// workerOf is the single worker of a master, or 0 while it has none.
func (r *running) workerOf(master int) int {
	for _, p := range children(master) {
		if exePath(p) == r.vassalExe {
			return p
		}
	}
	return 0
}

// logSize is the current length of the Emperor's log, a bookmark for
// waitLog.
func (r *running) logSize() int64 {
	st, err := os.Stat(r.logPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// waitLog waits until a line matching re appears in the log after offset.
func (r *running) waitLog(re *regexp.Regexp, offset int64, deadline time.Time) error {
	for {
		f, err := os.Open(r.logPath)
		if err != nil {
			return err
		}
		if _, err := f.Seek(offset, io.SeekStart); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			for sc.Scan() {
				if re.Match(sc.Bytes()) {
					f.Close()
					return nil
				}
			}
		}
		f.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("no log line %q: %w", re, errTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shutdown stops the Emperor and makes sure it and every process under it
// are gone: sig first (Ragnarok), then, after grace, SIGKILL to every one
// still there. It returns when all are gone.
func (r *running) shutdown(sig syscall.Signal, grace time.Duration) {
	if r == nil {
		return
	}
	handles := r.family()
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	if !r.handle.exited() {
		r.handle.signal(sig)
	}
	all := append([]*pidfd{r.handle}, handles...)
	if err := waitAllExit(all, time.Now().Add(grace), nil); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s Emperor: %v after %v; SIGKILL to the rest\n", r.kind.name, err, grace)
		for _, h := range all {
			if !h.exited() {
				h.signal(unix.SIGKILL)
			}
		}
		waitAllExit(all, time.Now().Add(10*time.Second), nil)
	}
	r.wait()
}

// family opens a handle on every process under the Emperor now (vassal
// masters and their workers). A handle is kept only if, once open, its
// process still has a parent in the family: a pid recycled in between
// never gets a signal from us.
func (r *running) family() []*pidfd {
	pids := descendants(r.pid)
	in := map[int]bool{r.pid: true}
	for _, p := range pids {
		in[p] = true
	}
	var out []*pidfd
	for _, p := range pids {
		h, err := openPidfd(p)
		if err != nil {
			continue
		}
		if f, err := statFields(p); err != nil || len(f) < 2 || !in[atoi(f[1])] {
			h.Close()
			continue
		}
		out = append(out, h)
	}
	return out
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// wait reaps the Emperor (it must have exited) and releases its handle.
func (r *running) wait() {
	current.Lock()
	defer current.Unlock()
	if r.cmd.ProcessState == nil {
		r.cmd.Wait()
	}
	r.handle.Close()
	if current.r == r {
		current.r = nil
	}
}
