// Package guardian makes sure nothing an Emperor started outlives it. A
// vassal gets SIGKILL when the Emperor dies (Pdeathsig), but its workers and
// their children do not: they would keep the vassal's ports and crash-loop
// the vassals of the next Emperor. The guardian is a small process the
// Emperor starts beside itself, in a session of its own, holding the read
// end of a pipe whose only writer is the Emperor. When the Emperor dies,
// however it dies, the kernel closes that end; the guardian reads EOF,
// kills every vassal cgroup the Emperor made (cgroup.kill where the kernel
// has it) and removes them, then exits.
//
// The guardian is the Emperor's own binary re-executed: a program that
// starts one calls IsGuardian and Main first thing in main (and so does a
// test binary that starts Emperors with cgroups).
package guardian

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/cgroup"
)

// envVar carries the Emperor's pid and the cgroup parents to the guardian:
// "PID:DIR\nDIR..." (a cgroup path comes from a line of /proc/self/cgroup, so it holds no newline).
const envVar = "_EMPEROR_GUARDIAN"

// sweepTimeout bounds how long the guardian waits for the cgroups to empty.
const sweepTimeout = 30 * time.Second

// IsGuardian reports whether this process was started as a guardian.
func IsGuardian() bool {
	_, ok := os.LookupEnv(envVar)
	return ok
}

// Main is the guardian: it waits for the Emperor to go, sweeps its
// cgroups and exits. It never returns.
func Main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("guardian", os.Getpid())
	pid, parents, err := parse(os.Getenv(envVar))
	if err != nil {
		log.Error("guardian: bad hand-over", "err", err)
		os.Exit(2)
	}
	log = log.With("emperor", pid)
	// A terminal's ^C or hang-up is for the Emperor, which ends its vassals
	// itself; the guardian waits for it to be gone.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE, syscall.SIGTSTP)
	pipe := os.NewFile(3, "emperor-guardian")
	b := make([]byte, 64)
	clean := false
	for {
		n, err := pipe.Read(b)
		if n > 0 && strings.Contains(string(b[:n]), "q") {
			clean = true // the Emperor ended its vassals itself
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Error("guardian: reading the Emperor's pipe", "err", err)
			}
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	n, err := cgroup.Sweep(ctx, parents, func(owner int) bool { return owner == pid })
	switch {
	case err != nil:
		log.Error("guardian: the Emperor is gone; some of its vassal cgroups are left", "removed", n, "err", err)
		os.Exit(1)
	case n > 0 && !clean:
		log.Warn("guardian: the Emperor died; killed what its vassals left and removed their cgroups", "cgroups", n)
	}
	os.Exit(0)
}

func parse(v string) (pid int, parents []string, err error) {
	p, dirs, ok := strings.Cut(v, ":")
	if pid, err = strconv.Atoi(p); !ok || err != nil || pid <= 0 {
		return 0, nil, fmt.Errorf("%s=%q: want PID:DIRS", envVar, v)
	}
	for _, d := range strings.Split(dirs, "\n") {
		if d != "" {
			parents = append(parents, d)
		}
	}
	return pid, parents, nil
}

// Guardian is the Emperor's handle on its guardian.
type Guardian struct {
	w    *os.File
	proc *os.Process
	done chan struct{}
}

// Start starts the guardian of this process's vassal cgroups below parents.
// Its stderr is the Emperor's, so its one line is seen where the Emperor's
// were.
func Start(parents []string, stderr *os.File) (*Guardian, error) {
	for _, d := range parents {
		if strings.ContainsAny(d, "\x00\n") {
			return nil, fmt.Errorf("guardian: cgroup directory %q holds a NUL or a newline", d)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("guardian: %w", err)
	}
	defer r.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("guardian: %w", err)
	}
	defer devnull.Close()
	env := append(os.Environ(), envVar+"="+strconv.Itoa(os.Getpid())+":"+strings.Join(parents, "\n"))
	p, err := os.StartProcess("/proc/self/exe", []string{os.Args[0] + " (emperor guardian)"}, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{devnull, devnull, stderr, r},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("guardian: %w", err)
	}
	g := &Guardian{w: w, proc: p, done: make(chan struct{})}
	go func() {
		p.Wait()
		close(g.done)
	}()
	return g, nil
}

// Pid is the guardian's pid.
func (g *Guardian) Pid() int { return g.proc.Pid }

// Stop tells the guardian the Emperor ended its vassals itself and waits
// for it to sweep what may be left and exit, up to ctx.
func (g *Guardian) Stop(ctx context.Context) error {
	g.w.Write([]byte("q"))
	g.w.Close()
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		g.proc.Kill()
		return fmt.Errorf("guardian %d did not exit: %w", g.proc.Pid, ctx.Err())
	}
}
