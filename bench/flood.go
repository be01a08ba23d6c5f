package main

// The flood section: each Emperor with a fleet of healthy vassals and one
// vassal writing its control channel as fast as it can. It measures what
// the other vassals and the operator see: a stats request, a new config
// served, a touch reloaded, quiet first and then while the flood runs.
//
// The flooding vassal is this binary re-executed in a hidden mode
// (floodMode, checked at the top of main). Both Emperors start every
// vassal as "uwsgi --ini NAME", so its config asks uWSGI to replace itself
// with the flooder before doing anything else (privileged-binary-patch-arg):
// the flooder then is the vassal process, holding the Emperor's channel
// under $UWSGI_EMPEROR_FD (3 under ours, 6 or so under uWSGI's).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// floodMode is the hidden first argument that makes this binary the
	// flooding vassal.
	floodMode = "__emperor-bench-flood"
	// floodByte is what the flooder writes: a heartbeat (26), which both
	// Emperors accept silently, so the figures measure reading the flood,
	// not logging it.
	floodByte = 26
	// floodChunk is the size of each write.
	floodChunk = 64 << 10
	// floodFleet is the number of healthy vassals beside the flooder.
	floodFleet = 20
	// floodWindow bounds the flood phase; the flooder stops by itself a
	// little after it.
	floodWindow = 60 * time.Second
	// floodStatsTimeout is how long one stats request may take.
	floodStatsTimeout = 4 * time.Second
	// floodEventTimeout is how long a new file or a touch may take.
	floodEventTimeout = 10 * time.Second
	// floodTolerance is how much slower than quiet ours may be under the
	// flood (p50 against p50).
	floodTolerance = 5.0 // ms
	// floodWarmup is how long a flooder must have run before a sample
	// counts: its channel's buffers are full by then.
	floodWarmup = 300 * time.Millisecond
)

var floodDefs = []struct {
	key, label string
	unit       unit
}{
	{"stats", "stats request, %s", unitMS},
	{"newfile", "new file → serving, %s", unitMS},
	{"touch", "touch → reload received (old worker exits), %s", unitMS},
	{"cpu", "emperor CPU during the phase, CPU-time clock (ms per 30 s), %s", unitCPU},
}

// floodSample is one kind of measurement, run reps times in a phase.
type floodSample struct {
	key  string
	reps int
	// one takes one sample; it returns +Inf on a timeout, NaN when it
	// could not measure (with a note).
	one func(i int) float64
}

// floodRun is one Emperor under test in the flood section.
type floodRun struct {
	r     *running
	self  string // this binary, as the flooder's /proc/PID/exe
	rows  *rowSet
	stats int // the stats server's port
	ports []int
	fleet []string // healthy vassals' configs, touched in turn
	touch int      // next fleet vassal to touch
	phase string   // "quiet" or "flood": where notes go
}

// note adds a note to the row of key in the current phase.
func (fr *floodRun) note(key, format string, args ...any) {
	fr.rows.note(key+":"+fr.phase, format, args...)
}

// runFloodSection measures both Emperors (or the one -only names) and
// returns the table.
func runFloodSection(s *settings, work string) *table {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	t := &table{head: []string{"metric", "uwsgi p50", "uwsgi p90", "ours p50", "ours p90", "ratio (uwsgi/ours)", "target"}}
	if err != nil {
		t.notes = append(t.notes, "not measured: cannot find this binary for the flooder: "+err.Error())
		return t
	}
	if strings.ContainsAny(self, " \t") {
		t.notes = append(t.notes, "not measured: uWSGI splits privileged-binary-patch-arg on spaces, and this binary's path has one: "+self)
		return t
	}
	vassalExe, err := filepath.EvalSymlinks(s.uwsgi)
	if err != nil {
		t.notes = append(t.notes, "not measured: "+err.Error())
		return t
	}
	res := map[string]*rowSet{}
	var kinds []*emperorKind
	if s.only != "ours" {
		kinds = append(kinds, uwsgiKind(s.uwsgi))
	}
	if s.only != "uwsgi" {
		kinds = append(kinds, oursKind(s.emperor, s.uwsgi))
	}
	for _, k := range kinds {
		res[k.name] = measureFlood(s, k, work, vassalExe, self)
	}
	return floodTable(t, res)
}

// measureFlood runs one Emperor through the quiet phase and the flood
// phase.
func measureFlood(s *settings, k *emperorKind, work, vassalExe, self string) *rowSet {
	rows := newRowSet()
	reps := min(s.reps, 20)
	events := min(s.reps, 5)
	ports, err := floodPorts(1 + floodFleet + 4*events) // new files: twice each phase's, for retakes
	if err != nil {
		rows.note("stats", "not measured: %v", err)
		return rows
	}
	dir := mkdir(work, k.name+"-flood")
	fr := &floodRun{self: self, rows: rows, stats: ports[0], ports: ports[1+floodFleet:]}
	for i, port := range ports[1 : 1+floodFleet] {
		name := fmt.Sprintf("fleet-%02d.ini", i)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(vassalConfig(port)), 0o644); err != nil {
			rows.note("stats", "not measured: %v", err)
			return rows
		}
		fr.fleet = append(fr.fleet, name)
	}
	statsKind := *k
	statsKind.argv = func(dir string) []string {
		return append(k.argv(dir), "--emperor-stats", "127.0.0.1:"+strconv.Itoa(fr.stats))
	}
	progress(k.name, "flood section: %d vassals; load average %s", floodFleet, loadavg())
	rows.note("load", "load average at the start of its flood section %s", loadavg())
	r, err := startEmperor(&statsKind, dir, filepath.Join(s.logDir, k.name+"-flood.log"), vassalExe)
	if err != nil {
		rows.note("stats", "not measured: start: %v", err)
		return rows
	}
	fr.r = r
	defer func() {
		r.shutdown(syscall.SIGTERM, eventTimeout)
		reportLog(r)
	}()
	for _, port := range ports[1 : 1+floodFleet] {
		if _, err := waitServing(port, 10*time.Millisecond, r.started.Add(eventTimeout)); err != nil {
			rows.note("stats", "not measured: the fleet did not serve: %v", err)
			return rows
		}
	}
	// Touches go to loyal vassals only, as in the latency rows.
	for _, name := range fr.fleet {
		if err := waitLoyal(r, name, 0); err != nil {
			rows.note("touch", "%s: %v", name, err)
		}
	}

	samples := []floodSample{
		{"stats", reps, func(int) float64 {
			time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
			return fr.statsOnce()
		}},
		{"newfile", events, fr.newFileOnce},
		{"touch", events, fr.touchOnce},
	}
	mark := lateNS.Load()
	fr.run("quiet", samples, nil, time.Time{})
	noteStalls(rows, "quiet", mark)

	// The flood.
	began := time.Now()
	deadline := began.Add(floodWindow)
	if err := os.WriteFile(filepath.Join(dir, "flood.ini"), []byte(floodConfig(self, deadline.Add(5*time.Second))), 0o644); err != nil {
		rows.note("stats", "no flood: %v", err)
		return rows
	}
	fl := &flooderWatch{fr: fr}
	defer fl.close()
	if _, ok := fl.wait(began.Add(15 * time.Second)); !ok {
		rows.note("stats", "no flood: the flooder never ran (within 15 s of its config)")
		return rows
	}
	progress(k.name, "flooder pid %d running; load average %s", fl.pid(), loadavg())
	mark = lateNS.Load()
	fr.run("flood", samples, fl, deadline)
	noteStalls(rows, "flood", mark)
	// The flooder's config goes: its vassal is stopped, and says at its
	// exit how much it wrote (floodFate reads that).
	os.Remove(filepath.Join(dir, "flood.ini"))
	if fl.h != nil {
		if _, err := fl.h.waitExit(time.Now().Add(floodEventTimeout)); err != nil {
			rows.note("flooder", "still running %v after its config was removed", floodEventTimeout)
		}
	}
	fl.close()
	rows.note("flooder", "the flooder was started %d times and ran %v of the %v the flood phase took; %s",
		len(fl.seen), fl.alive.Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond), r.kind.floodFate(r))
	rows.note("load", "load average at the end of its flood section %s", loadavg())
	return rows
}

// floodFate says what the Emperor did to the flooder, from its log.
func (k *emperorKind) floodFate(r *running) string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return err.Error()
	}
	if k.name == "ours" {
		return fmt.Sprintf("our Emperor logged %d SIGKILLs for flooding", strings.Count(string(b), "vassal flooded its control channel: SIGKILL"))
	}
	fate := fmt.Sprintf("uWSGI's Emperor logged %d curses of flood.ini", strings.Count(string(b), "curse the uwsgi instance flood.ini"))
	// A flooder that stops by itself says how much its channel took (the
	// Emperor's reads plus the socket's buffers).
	var sent int64
	for _, m := range floodSentRE.FindAllSubmatch(b, -1) {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		sent += n
	}
	if sent > 0 {
		fate += fmt.Sprintf("; the channel took %.1f MiB from the flooder", float64(sent)/(1<<20))
	}
	return fate
}

// floodSentRE matches the flooder's last words: how many bytes it wrote.
var floodSentRE = regexp.MustCompile(`flood vassal \d+: .*wrote (\d+) bytes`)

// run takes every sample of one phase, one kind after another; under a
// flood (fl not nil) a sample counts only if the flooder ran from its start
// to its end, and the phase ends at the deadline.
func (fr *floodRun) run(name string, samples []floodSample, fl *flooderWatch, deadline time.Time) {
	key := func(k string) string { return k + ":" + name }
	fr.phase = name
	cpu0, err0 := cpuClock(fr.r.pid)
	t0 := time.Now()
	for _, smp := range samples {
		timeouts, discarded := 0, 0
		for i := 0; i < smp.reps; i++ {
			if timeouts >= 3 {
				fr.rows.note(key(smp.key), "stopped after 3 timeouts")
				break
			}
			var h *pidfd
			if fl != nil {
				var ok bool
				if h, ok = fl.wait(deadline); !ok {
					fr.rows.note(key(smp.key), "%d of %d samples not taken: the flood phase ended", smp.reps-i, smp.reps)
					break
				}
			}
			v := smp.one(i)
			if h != nil && h.exited() {
				// The Emperor killed the flooder meanwhile: this sample is
				// not one under the flood. Take it again.
				discarded++
				if discarded <= 3*smp.reps {
					i--
				}
				continue
			}
			switch {
			case math.IsNaN(v):
			case math.IsInf(v, 1):
				timeouts++
				fr.rows.add(key(smp.key), v)
			default:
				fr.rows.add(key(smp.key), v)
			}
		}
		if discarded > 0 {
			fr.rows.note(key(smp.key), "%d samples thrown away: the flooder died during them", discarded)
		}
		progress(fr.r.kind.name, "%s: %s %s", name, smp.key, summary(fr.rows.samples[key(smp.key)]))
	}
	cpu1, err1 := cpuClock(fr.r.pid)
	if err := errors.Join(err0, err1); err != nil {
		fr.rows.note(key("cpu"), "%v", err)
		return
	}
	fr.rows.add(key("cpu"), ms(cpu1-cpu0)*float64(30*time.Second)/float64(time.Since(t0)))
}

func summary(v []float64) string {
	if len(v) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s p90 %s (%d samples, %d timeouts)", format(percentile(v, 50), unitMS), format(percentile(v, 90), unitMS), len(v), countInf(v))
}

// statsOnce times one stats request: connect, read to EOF, valid JSON.
func (fr *floodRun) statsOnce() float64 {
	t0 := time.Now()
	deadline := t0.Add(floodStatsTimeout)
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(fr.stats), floodStatsTimeout)
	if err != nil {
		fr.note("stats", "%v", err)
		return math.NaN()
	}
	defer c.Close()
	c.SetDeadline(deadline)
	b, err := io.ReadAll(c)
	d := time.Since(t0)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return inf
	}
	if err != nil || !json.Valid(b) {
		fr.note("stats", "%d bytes, valid JSON %v, error %v", len(b), json.Valid(b), err)
		return math.NaN()
	}
	return ms(d)
}

// newFileOnce writes a new config and times it until its vassal serves.
// Its moment is spread over uWSGI's scan period, as in the latency rows.
func (fr *floodRun) newFileOnce(int) float64 {
	if len(fr.ports) == 0 {
		fr.note("newfile", "no port left for another new file")
		return math.NaN()
	}
	port := fr.ports[0]
	fr.ports = fr.ports[1:]
	time.Sleep(time.Duration(rand.Float64() * float64(scanPeriod)))
	t0, err := writeConfig(fr.r.dir, fmt.Sprintf("new-%d.ini", port), port)
	if err != nil {
		fr.note("newfile", "%v", err)
		return math.NaN()
	}
	t, err := waitServing(port, pollEvery, t0.Add(floodEventTimeout))
	if err != nil {
		return inf
	}
	return ms(t.Sub(t0))
}

// touchOnce touches the next healthy vassal's config and times it until
// its worker exits (the reload received).
func (fr *floodRun) touchOnce(int) float64 {
	if fr.touch >= len(fr.fleet) {
		fr.note("touch", "every vassal of the fleet was touched once already")
		return math.NaN()
	}
	name := fr.fleet[fr.touch]
	fr.touch++
	master, worker, err := waitWorker(fr.r, name, time.Now().Add(floodEventTimeout))
	if err != nil {
		fr.note("touch", "%v", err)
		return math.NaN()
	}
	h, err := openPidfd(worker)
	if err != nil || fr.r.workerOf(master) != worker {
		h.Close()
		fr.note("touch", "%s: worker %d vanished before the touch", name, worker)
		return math.NaN()
	}
	defer h.Close()
	time.Sleep(time.Duration(rand.Float64() * float64(scanPeriod)))
	t0 := time.Now()
	if err := os.Chtimes(filepath.Join(fr.r.dir, name), t0, t0); err != nil {
		fr.note("touch", "%v", err)
		return math.NaN()
	}
	exited, err := h.waitExit(t0.Add(floodEventTimeout))
	if err != nil {
		return inf
	}
	return ms(exited.Sub(t0))
}

func floodPorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 10*n {
			return nil, fmt.Errorf("found only %d of %d free ports", len(out), n)
		}
		p, err := vbFreePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// floodTable lays the rows out in pairs, quiet then flooded, with ours
// under flood judged against ours quiet.
func floodTable(t *table, res map[string]*rowSet) *table {
	for _, d := range floodDefs {
		var quiet [2]float64
		for _, phase := range []string{"quiet", "flood"} {
			key := d.key + ":" + phase
			what := fmt.Sprintf("%d vassals, quiet", floodFleet)
			if phase == "flood" {
				what = fmt.Sprintf("%d vassals + 1 flooding its control channel", floodFleet)
			}
			label := fmt.Sprintf(d.label, what)
			row := []string{label}
			var p50 [2]float64
			for i, side := range []string{"uwsgi", "ours"} {
				p50[i] = math.NaN()
				rs := res[side]
				if rs == nil {
					row = append(row, "-", "-")
					continue
				}
				v := rs.samples[key]
				if len(v) == 0 {
					row = append(row, "n/a", "-")
				} else {
					var cells []string
					p50[i], cells = sampleCells(v, d.unit, d.unit == unitMS)
					row = append(row, cells...)
					if k := countInf(v); k > 0 {
						t.notes = append(t.notes, fmt.Sprintf("%s, %s: %d of %d timed out", label, side, k, len(v)))
					}
				}
				for _, n := range rs.notes[key] {
					t.notes = append(t.notes, fmt.Sprintf("%s, %s: %s", label, side, n))
				}
				if phase == "quiet" {
					quiet[i] = p50[i]
				}
			}
			ratio, target := ratioCell(p50[0], p50[1]), ""
			if phase == "flood" && d.unit == unitMS && !math.IsNaN(p50[1]) && !math.IsNaN(quiet[1]) {
				target = verdict(p50[1] <= quiet[1]+floodTolerance, fmt.Sprintf("ours ≤ ours quiet + %.0f ms", floodTolerance))
			}
			t.rows = append(t.rows, append(row, ratio, target))
		}
	}
	for _, side := range []string{"uwsgi", "ours"} {
		if rs := res[side]; rs != nil {
			for _, n := range rs.notes["flooder"] {
				t.notes = append(t.notes, fmt.Sprintf("%s: %s", side, n))
			}
			for _, phase := range []string{"quiet", "flood"} {
				for _, n := range rs.notes[phase] {
					t.notes = append(t.notes, fmt.Sprintf("%s, %s phase: %s", side, phase, n))
				}
			}
			for _, n := range rs.notes["load"] {
				t.notes = append(t.notes, fmt.Sprintf("%s: %s", side, n))
			}
			for _, n := range rs.notes["stats"] {
				t.notes = append(t.notes, fmt.Sprintf("%s: %s", side, n))
			}
			for _, n := range rs.notes["touch"] {
				t.notes = append(t.notes, fmt.Sprintf("%s: touch: %s", side, n))
			}
		}
	}
	t.notes = append(t.notes, fmt.Sprintf("under the flood a sample counts only if the flooder ran (for %v or more) from its start to its end; "+
		"a stats request times out after %v, a new file or a touch after %v", floodWarmup, floodStatsTimeout, floodEventTimeout))
	return t
}
