package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Hostile entries in a watched directory: a FIFO, a directory, a symlink
// loop, a 50 MB config, a mode-000 config of another uid, names with a
// newline and with invalid UTF-8. Each must get a clear log line, none may
// hang the monitor or the loop, and `emperor status` must stay one line
// per vassal.
func init() {
	register(Scenario{
		Order: 40, Name: "hostile-files",
		Fault: "hostile entries in the watched dir: FIFO, directory, symlink loop, 50 MB config, mode-000 config of uid 65534, names with a newline and invalid UTF-8",
		Hold:  "one clear log line each; no hang (a healthy vassal added after them serves, stats answer); `emperor status` one line per vassal",
		Run:   f1HostileFiles,
	})
}

// f1Hostile is one hostile entry: its name, how it is made, what its log
// lines must hold, and how it appears in the log (slog quotes names with
// control characters or invalid UTF-8).
type f1Hostile struct {
	name   string
	logged string // the name as the log shows it
	make   func(path string) error
	note   string // what the entry is
	port   int    // where it serves, when it is a config that should run
	// refused: the monitor refuses it (not a config), with exactly one line.
	refused bool
}

func f1HostileFiles(ctx context.Context, env *Env) (Result, error) {
	dir := env.Mkdir("vassals")
	stage := env.Mkdir("stage") // written here, renamed in whole
	config := func(port int) []byte {
		return []byte(fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\n", port, env.Hello))
	}
	var ports []int
	port := func() int {
		p, err := FreePort()
		if err != nil {
			return 0
		}
		ports = append(ports, p)
		return p
	}
	place := func(path string, b []byte, mode os.FileMode) error {
		tmp := filepath.Join(stage, fmt.Sprintf("f%d", len(b)))
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return err
		}
		if err := os.Chmod(tmp, mode); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}
	bigSize := env.Count(50<<20, 50<<20)
	entries := []f1Hostile{
		{name: "fifo.ini", note: "FIFO", refused: true, make: func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{name: "dir.ini", note: "directory", refused: true, make: func(p string) error { return os.Mkdir(p, 0o755) }},
		{name: "loop.ini", note: "symlink loop", refused: true, make: func(p string) error { return os.Symlink("loop.ini", p) }},
		{name: "big.ini", note: "50 MB config", make: func(p string) error {
			b := make([]byte, 0, bigSize)
			b = append(b, "[uwsgi]\n"...)
			line := "# padding padding padding padding padding padding padding padding\n"
			for len(b)+len(line) <= bigSize {
				b = append(b, line...)
			}
			return place(p, b, 0o644)
		}},
		{name: "unreadable.ini", note: "mode 000, uid 65534", make: func(p string) error {
			// Root (the Emperor here) reads a mode-000 file anyway
			// (CAP_DAC_OVERRIDE): it is a config like any other.
			tmp := filepath.Join(stage, "unreadable")
			if err := os.WriteFile(tmp, config(port()), 0o644); err != nil {
				return err
			}
			if err := os.Chown(tmp, 65534, 65534); err != nil {
				return err
			}
			if err := os.Chmod(tmp, 0); err != nil {
				return err
			}
			return os.Rename(tmp, p)
		}},
		{name: "bad\nname.ini", logged: `bad\nname.ini`, note: "newline in the name", make: func(p string) error { return place(p, config(port()), 0o644) }},
		{name: "\xff\xfe.ini", logged: `\xff\xfe.ini`, note: "invalid UTF-8 name", make: func(p string) error { return place(p, config(port()), 0o644) }},
	}
	if os.Geteuid() != 0 {
		// Without root, mode 000 means unreadable (refused) and chown
		// fails: make it mode 000 and our own.
		entries[4] = f1Hostile{name: "unreadable.ini", note: "mode 000", refused: true, make: func(p string) error {
			tmp := filepath.Join(stage, "unreadable")
			if err := os.WriteFile(tmp, config(0), 0); err != nil {
				return err
			}
			return os.Rename(tmp, p)
		}}
	}
	sock := filepath.Join(env.Dir, "stats.sock")
	em, err := env.StartEmperor("--emperor", dir, "--binary-path", env.Vassal, "--emperor-stats", sock)
	if err != nil {
		return Result{}, err
	}
	if _, err := em.WaitLog(ctx, 0, `msg="initial scan complete"`); err != nil {
		return Result{}, err
	}
	mark := em.LogSize()
	for i := range entries {
		e := &entries[i]
		n := len(ports)
		if err := e.make(filepath.Join(dir, e.name)); err != nil {
			return Result{}, fmt.Errorf("making %q (%s): %w", e.name, e.note, err)
		}
		if len(ports) > n {
			e.port = ports[n]
		}
	}
	// The healthy vassal comes last: it is spawned only if nothing
	// before it hung the monitor or the loop.
	healthyPort := port()
	if err := place(filepath.Join(dir, "healthy.ini"), config(healthyPort), 0o644); err != nil {
		return Result{}, err
	}
	added := time.Now()
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	servedAfter, served := Poll(hctx, func() bool { _, err := Get(fmt.Sprintf("http://127.0.0.1:%d/", healthyPort)); return err == nil })
	cancel()
	t0 := time.Now()
	st, serr := f1ReadStats(sock)
	statsTook := time.Since(t0)
	// A safety rescan or two (emperor-freq 3 s) to see whether the
	// refusals repeat.
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(env.Count(7, 4))*time.Second - time.Since(added)):
	}
	// The FIFO's writer end must still find no reader: nothing opened it.
	fifoOpened := false
	if fd, err := syscall.Open(filepath.Join(dir, "fifo.ini"), syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		fifoOpened = true // a reader has it open
		syscall.Close(fd)
	}

	// Log lines naming each entry, after the mark.
	counts := map[string]int{}
	firsts := map[string]string{}
	tooLarge, bigRuns := 0, 0
	bigPenalty := ""
	badLines, rawNewlineSplit := 0, 0
	eachLine(em.Log, mark, func(l string) bool {
		if !utf8.ValidString(l) {
			badLines++
		}
		if strings.HasPrefix(l, "name.ini") {
			rawNewlineSplit++
		}
		for _, e := range entries {
			logged := e.logged
			if logged == "" {
				logged = e.name
			}
			if !strings.Contains(l, logged) {
				continue
			}
			counts[e.name]++
			if firsts[e.name] == "" {
				firsts[e.name] = l
			}
			if e.name == "big.ini" {
				switch {
				case strings.Contains(l, "too large"):
					tooLarge++
				case strings.Contains(l, `msg="vassal running"`):
					bigRuns++
				}
				if m := f1EmperorRespawn.FindStringSubmatch(l); m != nil {
					bigPenalty = m[1]
				}
			}
		}
		return true
	})
	// emperor status: one line per vassal, plus its three header lines (the
	// Emperor, the summary by state, the column names).
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	out, cerr := exec.CommandContext(sctx, env.Emperor, "status", sock).Output()
	cancel()
	st2, serr2 := f1ReadStats(sock)
	statusLines := strings.Count(string(out), "\n")
	statusWant := -1
	if serr2 == nil {
		statusWant = len(st2.Vassals) + 3
	}
	statusValid := utf8.Valid(out)

	held := served && serr == nil && cerr == nil && statusLines == statusWant && statusValid && badLines == 0 && rawNewlineSplit == 0 && !fifoOpened
	var parts []string
	for _, e := range entries {
		n := counts[e.name]
		var ok bool
		var what string
		switch {
		case e.refused:
			// Exactly one line, saying why, however many rescans.
			ok = n == 1 && strings.Contains(firsts[e.name], "refusing config")
			what = fmt.Sprintf("%s %d line (%s)", f1Show(e.name), n, f1Why(firsts[e.name]))
		case e.name == "big.ini":
			// A config the vassal cannot read: one error line per
			// attempt, attempts spaced by the respawn penalty.
			ok = tooLarge >= 1 && tooLarge >= bigRuns-1 && tooLarge <= bigRuns
			what = fmt.Sprintf("big.ini %d attempts, %d ERROR lines \"configuration too large\"", bigRuns, tooLarge)
			if bigPenalty != "" {
				what += ", respawn penalty up to " + bigPenalty
			}
		default:
			// A config that runs: its name logged escaped, it serves.
			_, gerr := Get(fmt.Sprintf("http://127.0.0.1:%d/", e.port))
			ok = n >= 1 && gerr == nil
			serving := "serving"
			if gerr != nil {
				serving = "NOT serving"
			}
			what = fmt.Sprintf("%s (%s) spawned, %s, %d lines name it escaped", f1Show(e.name), e.note, serving, n)
			if e.name == "unreadable.ini" {
				what = fmt.Sprintf("unreadable.ini (%s: root reads it anyway) spawned, %s, %d lines", e.note, serving, n)
			}
		}
		if !ok {
			held = false
			what += " [NOT as it must be]"
		}
		parts = append(parts, what)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s; ", strings.Join(parts, "; "))
	if served {
		fmt.Fprintf(&b, "healthy vassal serving %s after it was added", f1Secs(servedAfter))
	} else {
		b.WriteString("healthy vassal NOT serving after 20 s")
	}
	if serr == nil {
		fmt.Fprintf(&b, ", stats answered in %s (%d vassals)", Ms(statsTook), len(st.Vassals))
	} else {
		fmt.Fprintf(&b, ", stats did NOT answer: %v", serr)
	}
	fmt.Fprintf(&b, "; emperor status: %d lines for %d (%d vassals + 3 headers)", statusLines, statusWant, statusWant-3)
	if cerr != nil {
		fmt.Fprintf(&b, " (failed: %v)", cerr)
	}
	if !statusValid {
		b.WriteString(", invalid UTF-8 in it")
	}
	if badLines > 0 || rawNewlineSplit > 0 {
		fmt.Fprintf(&b, "; %d log lines with invalid UTF-8, %d split by a raw newline", badLines, rawNewlineSplit)
	}
	if fifoOpened {
		b.WriteString("; the FIFO was left open by a reader")
	}
	return Result{Measured: b.String(), Held: held}, nil
}

// f1Show is a name as the table shows it.
func f1Show(name string) string {
	q := fmt.Sprintf("%q", name)
	if q[1:len(q)-1] == name {
		return name
	}
	return q
}

// f1Why is the gist of a log line: its msg, and its reason or err.
func f1Why(line string) string {
	if line == "" {
		return "none"
	}
	msg := f1QuotedField(line, "msg")
	for _, k := range []string{"reason", "err"} {
		if v := f1QuotedField(line, k); v != "" {
			if len(v) > 70 {
				v = v[:70] + "…"
			}
			return msg + ": " + v
		}
	}
	return msg
}
