package main

// The vassal runtime section: our vassal (cmd/vassal) hosting a trivial
// app, beside a real uWSGI vassal hosting the equivalent Python app. No
// Emperor is involved: each vassal runs standalone for the start and RSS
// rows, and under a fake Emperor (one end of a socketpair as
// UWSGI_EMPEROR_FD) for the reload row, which sends it byte 1, the reload
// order both vassals obey.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	vbStartDeadline = 60 * time.Second // exec → first 200, at most
	vbIdle          = 2 * time.Second  // ready → RSS measured
	vbRSSReps       = 3                // RSS samples per column (the first starts)
)

// vbSettings configures the section.
type vbSettings struct {
	vassal  string // our vassal binary; "" skips the section
	hello   string // the Go hello app
	helloPy string // examples/apps/hello.py
	uwsgi   string
	reps    int
	only    string // -only: "ours" leaves uWSGI's column out
	logDir  string
}

// vbKind is one column: a vassal hosting an app.
type vbKind struct {
	key, head string
	// config is the vassal's ini for port; argv runs it on the ini path.
	config func(port int) string
	argv   func(ini string) []string
	// skip says why the column is not measured.
	skip string
	// detail is a note on what the column runs.
	detail string
}

// vbColumn is what one column measured.
type vbColumn struct {
	start  []float64 // ms, exec → first 200
	rss    []float64 // MiB, the process tree once ready and idle
	reload *vbReloadResult
	notes  map[string][]string
}

func (c *vbColumn) note(key, format string, args ...any) {
	c.notes[key] = append(c.notes[key], fmt.Sprintf(format, args...))
}

// vbWSGIApp is the uWSGI column's app: it answers as examples/apps/hello
// and hello.py do.
const vbWSGIApp = `import os

NAME = os.environ.get("NAME") or "hello"


def application(environ, start_response):
    body = ("hello from %s pid %d\n" % (NAME, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]
`

func vbKinds(s *vbSettings, dir string) []*vbKind {
	uw := &vbKind{
		key:    "uwsgi",
		head:   "uwsgi (python app)",
		detail: "uwsgi --ini: plugins = python3, master = true, processes = 1, wsgi-file of an app answering as hello does",
		config: func(port int) string {
			return fmt.Sprintf("[uwsgi]\nplugins = python3\nhttp-socket = 127.0.0.1:%d\nmaster = true\nprocesses = 1\n"+
				"wsgi-file = %s\nenv = NAME=uwsgi\ndisable-logging = true\n", port, filepath.Join(dir, "app.py"))
		},
		argv: func(ini string) []string { return []string{s.uwsgi, "--ini", ini} },
	}
	if s.only == "ours" {
		uw.skip = "not measured: -only ours"
	} else if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(vbWSGIApp), 0o644); err != nil {
		uw.skip = err.Error()
	}
	oursArgv := func(ini string) []string { return []string{s.vassal, "--ini", ini} }
	goHello := &vbKind{
		key:  "ours-go",
		head: "ours (vassal + Go hello)",
		config: func(port int) string {
			return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nprocesses = 1\nworker-exec = %s\nenv = NAME=ours-go\n", port, s.hello)
		},
		argv: oursArgv,
	}
	if s.hello == "" {
		goHello.skip = "not measured: no -hello"
	} else if _, err := os.Stat(s.hello); err != nil {
		goHello.skip = err.Error()
	}
	pyHello := &vbKind{
		key:  "ours-py",
		head: "ours (vassal + python hello)",
		argv: oursArgv,
	}
	// The system interpreter, which Debian's uWSGI python3 plugin embeds
	// too (a python3 earlier in PATH may be a wrapper, e.g. a pyenv shim,
	// that would add its own start-up time).
	python, err := "/usr/bin/python3", error(nil)
	if _, serr := os.Stat(python); serr != nil {
		python, err = exec.LookPath("python3")
	}
	switch {
	case err != nil:
		pyHello.skip = "not measured: " + err.Error()
	case s.helloPy == "":
		pyHello.skip = "not measured: no -hello-py"
	default:
		if _, err := os.Stat(s.helloPy); err != nil {
			pyHello.skip = "not measured: " + err.Error()
		}
	}
	pyHello.detail = fmt.Sprintf("worker-exec = %s %s", python, s.helloPy)
	pyHello.config = func(port int) string {
		return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nprocesses = 1\nworker-exec = %s %s\nenv = NAME=ours-py\n", port, python, s.helloPy)
	}
	return []*vbKind{uw, goHello, pyHello}
}

// runVassalSection measures every column and returns the table.
func runVassalSection(s *vbSettings, work string) *table {
	dir := mkdir(work, "vassal-runtime")
	kinds := vbKinds(s, dir)
	cols := map[string]*vbColumn{}
	progress("vassl", "vassal runtime section start; load average %s", loadavg())
	for _, k := range kinds {
		c := &vbColumn{notes: map[string][]string{}}
		cols[k.key] = c
		if k.skip != "" {
			continue
		}
		vbMeasure(s, k, dir, c)
	}
	progress("vassl", "vassal runtime section done; load average %s", loadavg())
	return vbTable(kinds, cols)
}

// vbMeasure runs one column's rows.
func vbMeasure(s *vbSettings, k *vbKind, dir string, c *vbColumn) {
	port, err := vbFreePort()
	if err != nil {
		c.note("start", "%v", err)
		return
	}
	ini := filepath.Join(dir, k.key+".ini")
	if err := os.WriteFile(ini, []byte(k.config(port)), 0o644); err != nil {
		c.note("start", "%v", err)
		return
	}
	logPath := filepath.Join(s.logDir, "vassal-"+k.key+".log")
	failures := 0
	for rep := range s.reps {
		if failures >= 3 {
			c.note("start", "stopped after 3 failures")
			break
		}
		p, err := vbStart(k.argv(ini), dir, logPath, nil, nil)
		if err != nil {
			c.note("start", "start: %v", err)
			return
		}
		t, err := waitServing(port, time.Millisecond, p.started.Add(vbStartDeadline))
		if err != nil {
			failures++
			c.start = append(c.start, inf)
			c.note("start", "rep %d: %v (log %s)", rep, err, logPath)
			p.stop(port)
			continue
		}
		c.start = append(c.start, ms(t.Sub(p.started)))
		line := fmt.Sprintf("%s start %d: first 200 after %.1f ms", k.key, rep, ms(t.Sub(p.started)))
		if rep < vbRSSReps {
			time.Sleep(vbIdle)
			kib, n, err := treeRSS(p.pid)
			if err != nil {
				c.note("rss", "rep %d: %v", rep, err)
			} else {
				c.rss = append(c.rss, float64(kib)/1024)
				line += fmt.Sprintf("; RSS of %d processes %.1f MiB", n, float64(kib)/1024)
			}
		}
		progress("vassl", "%s", line)
		p.stop(port)
	}
	r, err := vbReload(k, ini, dir, logPath, port)
	if err != nil {
		c.note("reload", "%v (log %s)", err, logPath)
	}
	if r != nil {
		c.note("reload", "max latency %s", format(r.max, unitMS))
		if r.failed > 0 {
			c.note("reload", "first failures: %s", strings.Join(r.failures, "; "))
		}
	}
	c.reload = r
}

// vbFreePort is a loopback port nothing listened on a moment ago.
func vbFreePort() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return 0, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	return sa.(*unix.SockaddrInet4).Port, nil
}

// vbProc is one vassal the section started, in its own process group.
type vbProc struct {
	cmd     *exec.Cmd
	pid     int
	handle  *pidfd
	started time.Time
}

// vbStart runs argv in dir with its output appended to logPath; files
// become fds 3, ...; env is added to the bench's environment.
func vbStart(argv []string, dir, logPath string, files []*os.File, env []string) (*vbProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "### bench: %s start %q\n", time.Now().Format(time.RFC3339Nano), argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &vbProc{cmd: cmd}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.pid = cmd.Process.Pid
	p.handle, err = openPidfd(p.pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	return p, nil
}

// stop kills the vassal and everything under it, and waits until they
// are gone and port is free again.
func (p *vbProc) stop(port int) {
	var fam []*pidfd
	for _, pid := range descendants(p.pid) {
		if h, err := openPidfd(pid); err == nil {
			fam = append(fam, h)
		}
	}
	// The group the bench made for this vassal, then each process found
	// under it (through its handle: never a recycled pid).
	unix.Kill(-p.pid, unix.SIGKILL)
	p.handle.signal(unix.SIGKILL)
	for _, h := range fam {
		h.signal(unix.SIGKILL)
	}
	if err := waitAllExit(append([]*pidfd{p.handle}, fam...), time.Now().Add(10*time.Second), nil); err != nil {
		progress("vassl", "vassal %d: %v", p.pid, err)
	}
	p.cmd.Wait()
	p.handle.Close()
	for _, h := range fam {
		h.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !portFree(port) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// treeRSS sums VmRSS over pid and its descendants, in KiB, and counts them.
func treeRSS(pid int) (int64, int, error) {
	var total int64
	n := 0
	for _, p := range append([]int{pid}, descendants(pid)...) {
		kib, err := statusKiB(p, "VmRSS")
		if err != nil {
			if p == pid {
				return 0, 0, err
			}
			continue // exited meanwhile
		}
		total += kib
		n++
	}
	return total, n, nil
}

// vbTable lays the columns out.
func vbTable(kinds []*vbKind, cols map[string]*vbColumn) *table {
	t := &table{head: []string{"vassal runtime"}}
	for _, k := range kinds {
		t.head = append(t.head, k.head)
	}
	t.head = append(t.head, "target")
	type rowSpec struct {
		key, label string
		cell       func(c *vbColumn) string
		target     func() string
	}
	// The target is our vassal hosting the trivial app (the Go hello); the
	// Python column is reported as measured. Both apps answer the
	// connections they accepted before exiting on SIGTERM.
	oursZero := func() string {
		r := cols["ours-go"].reload
		if r == nil {
			return ""
		}
		return verdict(r.failed == 0 && r.newWorker, "ours + Go hello: 0 failed")
	}
	rows := []rowSpec{
		{"start", "start → ready (first 200), p50/p90 over -reps", func(c *vbColumn) string {
			if len(c.start) == 0 {
				return "n/a"
			}
			return format(percentile(c.start, 50), unitMS) + " / " + format(percentile(c.start, 90), unitMS)
		}, nil},
		{"rss", "RSS of the vassal's process tree, ready and idle (MiB)", func(c *vbColumn) string {
			if len(c.rss) == 0 {
				return "n/a"
			}
			return format(percentile(c.rss, 50), unitMiB)
		}, nil},
		{"reload", "reload under load: requests / failed / p99 latency during the reload", func(c *vbColumn) string {
			r := c.reload
			if r == nil {
				return "n/a"
			}
			return fmt.Sprintf("%d / %d / %s", r.requests, r.failed, format(r.p99, unitMS))
		}, oursZero},
		{"switch", "reload: byte 1 → first answer from a new worker / every old worker exited", func(c *vbColumn) string {
			r := c.reload
			if r == nil || !r.newWorker {
				return "n/a"
			}
			return format(r.switchMS, unitMS) + " / " + format(r.oldGoneMS, unitMS)
		}, nil},
	}
	for _, rs := range rows {
		row := []string{rs.label}
		for _, k := range kinds {
			c := cols[k.key]
			if k.skip != "" {
				row = append(row, "-")
				continue
			}
			row = append(row, rs.cell(c))
			for _, n := range c.notes[rs.key] {
				t.notes = append(t.notes, fmt.Sprintf("%s, %s: %s", rs.label, k.head, n))
			}
		}
		target := ""
		if rs.target != nil {
			target = rs.target()
		}
		t.rows = append(t.rows, append(row, target))
	}
	for _, k := range kinds {
		if k.skip != "" {
			t.notes = append(t.notes, fmt.Sprintf("%s: %s", k.head, k.skip))
		}
	}
	for _, k := range kinds {
		if k.skip == "" && k.detail != "" {
			t.notes = append(t.notes, k.head+": "+k.detail)
		}
	}
	t.notes = append(t.notes,
		"the reload target judges our vassal with the Go hello app; both hello apps answer the connections they accepted before exiting on SIGTERM",
		"start → ready: from exec of the vassal (standalone, no Emperor) to the first 200 on its port; then it is killed and started again",
		fmt.Sprintf("RSS: VmRSS summed over the vassal and every descendant, %v after ready (p50 of the first %d starts)", vbIdle, vbRSSReps),
		fmt.Sprintf("reload: the vassal runs under a fake Emperor (a socketpair as UWSGI_EMPEROR_FD) that sends byte 1; %d clients, each request on a fresh connection, "+
			"run from %v before it until %v after both the first answer from a new worker and the exit of every old worker; a failure is a refused, reset or timed-out (%v) connection or a non-200",
			vbClients, vbLoadBefore, vbLoadAfter, vbRequestTimeout))
	return t
}

var errVBNoNewWorker = errors.New("no answer from a new worker")
