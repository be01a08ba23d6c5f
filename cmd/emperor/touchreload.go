package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/emperor-dev/emperor/emperor"
)

// restartState says whether a touch-reload asked the Emperor to restart.
// The signal goroutine sets it; run reads it once the Emperor has ended.
type restartState struct{ on atomic.Bool }

func (r *restartState) asked() bool { return r.on.Load() }

// signals passes the OS signals on to the Emperor and acts on two things
// itself: SIGHUP reopens the log file (log-reopen; SIGHUP still reloads
// every vassal, as in uWSGI), and a touched touch-reload file asks for a
// restart and sends the Emperor emperor.RestartSignal: Ragnarok, after which run
// re-executes the Emperor. stop ends the goroutine.
//
// A restart ends every vassal and starts them again: handing them over to
// the new Emperor is issue 18's live upgrade.
func (p *lifecycleSettings) signals(in <-chan os.Signal, freq time.Duration, log *slog.Logger) (out <-chan os.Signal, stop func()) {
	fwd := make(chan os.Signal, cap(in)+1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	touched := make(chan string, 1)
	if len(p.touchReload) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchTouches(ctx, p.touchReload, freq, log, touched)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-in:
				if sig == syscall.SIGHUP && p.logReopen {
					p.log.reopen(log)
				}
				select {
				case fwd <- sig:
				case <-ctx.Done():
					return
				}
			case f := <-touched:
				log.Info("touch-reload: restarting the Emperor; its vassals restart with it", "file", f)
				p.restart.on.Store(true)
				select {
				case fwd <- emperor.RestartSignal{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return fwd, func() {
		cancel()
		wg.Wait()
	}
}

// watchTouches sends the first of files whose mtime changes (or which
// appears) on touched, then returns. It watches the files' directories
// with inotify, so an editor's rename over a file counts too; where
// inotify cannot watch, it stats the files every freq.
func watchTouches(ctx context.Context, files []string, freq time.Duration, log *slog.Logger, touched chan<- string) {
	last := map[string]time.Time{}
	dirs := map[string]bool{}
	var abs []string
	for _, f := range files {
		a, err := filepath.Abs(f)
		if err != nil {
			a = f
		}
		abs = append(abs, a)
		last[a] = mtime(a)
		dirs[filepath.Dir(a)] = true
	}
	var evC <-chan fsnotify.Event
	var errC <-chan error
	poll := false
	if w, err := fsnotify.NewWatcher(); err != nil {
		log.Warn("touch-reload: inotify unavailable; polling", "err", err, "every", freq)
		poll = true
	} else {
		defer w.Close()
		evC, errC = w.Events, w.Errors
		for d := range dirs {
			if err := w.Add(d); err != nil {
				log.Warn("touch-reload: cannot watch a directory; polling", "dir", d, "err", err, "every", freq)
				poll = true
			}
		}
	}
	var tick <-chan time.Time
	if poll {
		if freq <= 0 {
			freq = 3 * time.Second
		}
		t := time.NewTicker(freq)
		defer t.Stop()
		tick = t.C
	}
	check := func() bool {
		for _, f := range abs {
			if m := mtime(f); !m.IsZero() && !m.Equal(last[f]) {
				touched <- f
				return true
			}
		}
		return false
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-evC:
			if !ok {
				evC, errC = nil, nil
				continue
			}
			if _, ours := last[filepath.Clean(ev.Name)]; ours && check() {
				return
			}
		case err, ok := <-errC:
			if ok {
				log.Warn("touch-reload: watch error; checking the files", "err", err)
				if check() {
					return
				}
			}
		case <-tick:
			if check() {
				return
			}
		}
	}
}

// mtime is a file's modification time, zero if it cannot be read.
func mtime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// restartIfAsked re-executes the Emperor after a touch-reload's Ragnarok:
// the same binary (by the path it was started from, so an upgraded binary
// runs), the same argv and environment. It returns only if it cannot.
func (p *lifecycleSettings) restartIfAsked(log *slog.Logger) int {
	if !p.restart.asked() {
		return 0
	}
	exe := p.exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	log.Info("touch-reload: re-executing the Emperor", "binary", exe)
	err := syscall.Exec(exe, os.Args, append(os.Environ(), restartEnv+"=1"))
	log.Error("touch-reload: the Emperor could not restart", "binary", exe, "err", err)
	return 1
}
