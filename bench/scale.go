package main

// The scale section (issue 15, part 6): N tiny protocol-speaking vassals
// (bench/scale_vassal.go) under our Emperor and under uwsgi --emperor, one
// after the other on the same vassal binary, for each N.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// scaleSettings are the scale section's knobs.
type scaleSettings struct {
	emperor, uwsgi string
	sizes          []int
	reps           int           // repetitions of each latency row
	flood          int           // configs written at once after the start
	idle           time.Duration // CPU measurement window
	only           string        // ours, uwsgi or both
	logDir         string
}

// scaleKinds are the two Emperors on the scale vassal. Ours runs without
// cgroups, as uWSGI's does, for a like-for-like row.
func scaleKinds(sc *scaleSettings, vassal string) []*emperorKind {
	var kinds []*emperorKind
	if sc.only != "ours" {
		kinds = append(kinds, &emperorKind{name: "uwsgi", argv: func(dir string) []string {
			return []string{sc.uwsgi, "--emperor", dir, "--binary-path", vassal}
		}})
	}
	if sc.only != "uwsgi" {
		kinds = append(kinds, &emperorKind{name: "ours", argv: func(dir string) []string {
			return []string{sc.emperor, "--emperor", dir, "--binary-path", vassal, "--emperor-cgroup", "false"}
		}})
	}
	return kinds
}

// runScaleSection builds the vassal, measures each size on each Emperor
// and returns the table.
func runScaleSection(sc *scaleSettings, work string) *table {
	vassal, err := buildScaleVassal(mkdir(work, "scale-bin"))
	if err != nil {
		return &table{head: []string{"scale"}, notes: []string{err.Error()}}
	}
	res := map[int]map[string]*rowSet{}
	for _, n := range sc.sizes {
		res[n] = map[string]*rowSet{}
		for _, k := range scaleKinds(sc, vassal) {
			res[n][k.name] = scaleSide(sc, k, n, work, vassal)
		}
	}
	return scaleTable(sc, res)
}

// scaleSide runs one Emperor on n vassals: cold start, steady state, the
// latency rows, the flood, then Ragnarok.
func scaleSide(sc *scaleSettings, k *emperorKind, n int, work, vassal string) *rowSet {
	rows := newRowSet()
	progress(k.name, "scale N=%d: writing configs; load average %s", n, loadavg())
	dir := mkdir(work, fmt.Sprintf("scale-%s-%d", k.name, n))
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, scaleName("v", i)+".ini"), []byte("[uwsgi]\n"), 0o644); err != nil {
			rows.note("cold", "write config: %v", err)
			return rows
		}
	}
	logPath := filepath.Join(sc.logDir, fmt.Sprintf("scale-%s-%d.log", k.name, n))
	marks := followMarks(logPath)
	defer marks.close()
	r, err := startEmperor(k, dir, logPath, vassal)
	if err != nil {
		rows.note("cold", "start: %v", err)
		return rows
	}
	done := false
	defer func() {
		if !done {
			r.shutdown(syscall.SIGTERM, eventTimeout)
		}
		reportLog(r)
	}()

	at, up, err := marks.waitCount("up", n, r.started.Add(eventTimeout+time.Duration(n)*20*time.Millisecond))
	if err != nil {
		rows.add("cold", inf)
		rows.note("cold", "%v%s", err, logTail(logPath, "too many open files"))
	} else {
		rows.add("cold", ms(at.Sub(r.started)))
	}
	progress(k.name, "scale N=%d: cold start: %d up after %v", n, up, time.Since(r.started).Round(time.Millisecond))

	steady(r, n, sc.idle, rows)
	scaleTouch(sc, r, marks, n, rows)
	scaleNew(sc, r, marks, rows)
	scaleDelete(sc, r, marks, n, rows)
	scaleFlood(sc, r, marks, rows)
	done = true
	ragnarok(r, syscall.SIGTERM, rows)
	return rows
}

// maxTimeouts ends a latency row early: an Emperor that cannot spawn (out
// of fds, say) would otherwise cost a full eventTimeout per repetition.
const maxTimeouts = 2

func scaleName(prefix string, i int) string { return fmt.Sprintf("%s-%05d", prefix, i) }

// scaleTouch touches reps different vassals' configs, spread over the
// Emperors' scan period, and times each until the vassal receives byte 1.
func scaleTouch(sc *scaleSettings, r *running, marks *markLog, n int, rows *rowSet) {
	at := newPhases(sc.reps)
	for i := range sc.reps {
		if countInf(rows.samples["touch"]) >= maxTimeouts {
			rows.note("touch", "stopped after %d timeouts", maxTimeouts)
			break
		}
		name := scaleName("v", i*n/sc.reps)
		at.wait()
		t0 := time.Now()
		if err := os.Chtimes(filepath.Join(r.dir, name+".ini"), t0, t0); err != nil {
			rows.note("touch", "%v", err)
			return
		}
		got, err := marks.waitMark(name, "1", t0, t0.Add(eventTimeout))
		if err != nil {
			rows.add("touch", inf)
			rows.note("touch", "%v", err)
			continue
		}
		rows.add("touch", ms(got.Sub(t0)))
	}
	progress(r.kind.name, "scale: touch → byte 1: %s", summary(rows.samples["touch"]))
}

// scaleNew writes reps new configs one at a time, timing each until its
// vassal starts.
func scaleNew(sc *scaleSettings, r *running, marks *markLog, rows *rowSet) {
	at := newPhases(sc.reps)
	for i := range sc.reps {
		if countInf(rows.samples["spawn"]) >= maxTimeouts {
			rows.note("spawn", "stopped after %d timeouts", maxTimeouts)
			break
		}
		name := scaleName("new", i)
		at.wait()
		t0, err := writeScaleConfig(r.dir, name)
		if err != nil {
			rows.note("spawn", "%v", err)
			break
		}
		got, err := marks.waitMark(name, "start", t0, t0.Add(eventTimeout))
		if err != nil {
			rows.add("spawn", inf)
			rows.note("spawn", "%v", err)
			continue
		}
		rows.add("spawn", ms(got.Sub(t0)))
	}
	progress(r.kind.name, "scale: new → spawned %s", summary(rows.samples["spawn"]))
}

// scaleDelete deletes the configs of reps vassals of the cold start (not
// the touched ones), one at a time, timing each until its vassal receives
// byte 0. A vassal that never came up is skipped.
func scaleDelete(sc *scaleSettings, r *running, marks *markLog, n int, rows *rowSet) {
	time.Sleep(settle)
	at := newPhases(sc.reps)
	for i := range sc.reps {
		if countInf(rows.samples["stop"]) >= maxTimeouts {
			rows.note("stop", "stopped after %d timeouts", maxTimeouts)
			break
		}
		name := scaleName("v", i*n/sc.reps+1)
		if _, err := marks.waitMark(name, "up", time.Time{}, time.Now()); err != nil {
			rows.note("stop", "%s never came up: skipped", name)
			continue
		}
		at.wait()
		t0 := time.Now()
		if err := os.Remove(filepath.Join(r.dir, name+".ini")); err != nil {
			rows.note("stop", "%v", err)
			continue
		}
		got, err := marks.waitMark(name, "0", t0, t0.Add(eventTimeout))
		if err != nil {
			rows.add("stop", inf)
			rows.note("stop", "%v", err)
			continue
		}
		rows.add("stop", ms(got.Sub(t0)))
	}
	progress(r.kind.name, "scale: delete → byte 0 %s", summary(rows.samples["stop"]))
}

// scaleFlood writes sc.flood new configs at once and times until every one
// of their vassals is up.
func scaleFlood(sc *scaleSettings, r *running, marks *markLog, rows *rowSet) {
	time.Sleep(settle)
	before, _ := marks.count("up")
	t0 := time.Now()
	for i := range sc.flood {
		if _, err := writeScaleConfig(r.dir, scaleName("flood", i)); err != nil {
			rows.note("flood", "%v", err)
			return
		}
	}
	at, got, err := marks.waitCount("up", before+sc.flood, t0.Add(eventTimeout+time.Duration(sc.flood)*100*time.Millisecond))
	if err != nil {
		rows.add("flood", inf)
		rows.note("flood", "%d of %d up: %v", got-before, sc.flood, err)
	} else {
		rows.add("flood", ms(at.Sub(t0)))
	}
	progress(r.kind.name, "scale: flood of %d: %d up after %v", sc.flood, got-before, time.Since(t0).Round(time.Millisecond))
}

// writeScaleConfig puts a config in place in one rename, so no Emperor
// sees it half-written, and returns the moment of the rename.
func writeScaleConfig(dir, name string) (time.Time, error) {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte("[uwsgi]\n"), 0o644); err != nil {
		return time.Time{}, fmt.Errorf("write config %s: %w", name, err)
	}
	t := time.Now()
	if err := os.Rename(tmp, filepath.Join(dir, name+".ini")); err != nil {
		return t, fmt.Errorf("write config %s: %w", name, err)
	}
	return t, nil
}

// logTail is the first log line containing want, as a note suffix, or "".
func logTail(path, want string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	n := strings.Count(string(b), want)
	if n == 0 {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, want) {
			return fmt.Sprintf(" (%d log lines say %q, first: %s)", n, want, strings.TrimSpace(line))
		}
	}
	return ""
}
