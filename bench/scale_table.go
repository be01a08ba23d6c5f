package main

// The scale section's table and flags.

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// scaleFlags registers the scale section's flags; sizes is parsed later by
// scaleSizes.
type scaleFlags struct {
	on, only bool
	sizes    string
	reps     int
	flood    int
}

func (f *scaleFlags) register() {
	flag.BoolVar(&f.on, "scale", true, "add the scale table: N tiny C vassals under each Emperor (bench/scale*.go)")
	flag.BoolVar(&f.only, "scale-only", false, "run only the scale section")
	flag.StringVar(&f.sizes, "scale-n", "1000,10000", "vassal counts of the scale section, e.g. 1000 or 1000,10000")
	flag.IntVar(&f.reps, "scale-reps", 10, "repetitions of each latency row of the scale section")
	flag.IntVar(&f.flood, "scale-flood", 200, "new configs written at once after the start, in the scale section")
}

// settings builds the section's settings from the flags and the bench's.
func (f *scaleFlags) settings(s *settings) (*scaleSettings, error) {
	sc := &scaleSettings{emperor: s.emperor, uwsgi: s.uwsgi, reps: f.reps, flood: f.flood,
		idle: s.idle, only: s.only, logDir: s.logDir}
	for _, v := range strings.Split(f.sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-scale-n: bad size %q", v)
		}
		sc.sizes = append(sc.sizes, n)
	}
	if sc.reps < 1 || sc.flood < 1 {
		return nil, fmt.Errorf("-scale-reps and -scale-flood must be at least 1")
	}
	if sc.emperor == "" && sc.only != "uwsgi" {
		return nil, fmt.Errorf("the scale section needs -emperor (or -only uwsgi)")
	}
	return sc, nil
}

// under1pc judges idle CPU: under 1% of a core is under 300 ms per 30 s.
func under1pc(_, ours float64) string {
	if math.IsNaN(ours) {
		return ""
	}
	return verdict(ours < 300, "ours < 1% of a core")
}

func scaleDefs(sc *scaleSettings, n int) []rowDef {
	return []rowDef{
		{"cold", fmt.Sprintf("N=%d: cold start, all up (sent 1, 5, 17)", n), unitMS, false, ratioAtLeast(2, "≤ half of uWSGI")},
		{"cpuns", fmt.Sprintf("N=%d: idle CPU per 30 s (CPU-time clock)", n), unitCPU, false, under1pc},
		{"rss", fmt.Sprintf("N=%d: emperor RSS, idle", n), unitMiB, false, ratioAtLeast(0.5, "≤ 2× uWSGI")},
		{"rssanon", fmt.Sprintf("N=%d: emperor anonymous RSS (heap, stacks), idle", n), unitMiB, false, nil},
		{"touch", fmt.Sprintf("N=%d: touch → byte 1 received", n), unitMS, true, under50},
		{"spawn", fmt.Sprintf("N=%d: new config → vassal started", n), unitMS, true, under50},
		{"stop", fmt.Sprintf("N=%d: delete → byte 0 received", n), unitMS, true, under50},
		{"flood", fmt.Sprintf("N=%d: %d new configs after start, all up", n, sc.flood), unitMS, false, ratioAtLeast(1, "no slower")},
		{"ragnarok", fmt.Sprintf("N=%d: Ragnarok (until the emperor and every vassal exited)", n), unitMS, false, ratioAtLeast(1, "no slower")},
	}
}

func scaleTable(sc *scaleSettings, res map[int]map[string]*rowSet) *table {
	t := &table{head: []string{"scale (tiny C vassal)", "uwsgi p50", "uwsgi p90", "ours p50", "ours p90", "ratio (uwsgi/ours)", "target"}}
	for _, n := range sc.sizes {
		for _, d := range scaleDefs(sc, n) {
			row := []string{d.label}
			p50 := [2]float64{math.NaN(), math.NaN()}
			for i, side := range []string{"uwsgi", "ours"} {
				rs := res[n][side]
				if rs == nil || len(rs.samples[d.key]) == 0 {
					row = append(row, "n/a", "-")
				} else {
					var cells []string
					p50[i], cells = sampleCells(rs.samples[d.key], d.unit, d.p90)
					row = append(row, cells...)
					if k := countInf(rs.samples[d.key]); k > 0 {
						t.notes = append(t.notes, fmt.Sprintf("%s, %s: %d of %d timed out", d.label, side, k, len(rs.samples[d.key])))
					}
				}
				if rs != nil {
					notes := rs.notes[d.key]
					if d.key == "cpuns" { // steady's notes on the vassal count
						notes = append(notes[:len(notes):len(notes)], rs.notes["cpu"]...)
					}
					for _, note := range notes {
						t.notes = append(t.notes, fmt.Sprintf("%s, %s: %s", d.label, side, note))
					}
				}
			}
			target := ""
			if d.target != nil {
				target = d.target(p50[0], p50[1])
			}
			t.rows = append(t.rows, append(row, ratioCell(p50[0], p50[1]), target))
		}
	}
	t.notes = append(t.notes,
		"ours runs with emperor-cgroup = false (uWSGI makes no cgroups); both inherit the bench's RLIMIT_NOFILE, raised to the hard limit",
		"latencies are from the bench's action to the vassal's own CLOCK_REALTIME mark")
	return t
}

// scaleSection runs the scale section when it is on, or returns nil.
func scaleSection(s *settings, f *scaleFlags, work string) *table {
	if !f.on {
		return nil
	}
	sc, err := f.settings(s)
	if err != nil {
		return &table{head: []string{"scale"}, notes: []string{err.Error()}}
	}
	return runScaleSection(sc, work)
}

// scaleOnly runs only the scale section and prints (and with -md writes)
// its table.
func scaleOnly(s *settings, f *scaleFlags, work string, h header, began time.Time) int {
	sc, err := f.settings(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "emperor-bench:", err)
		return 2
	}
	for i := range h { // the settings that shaped this section
		if h[i][0] == "settings" {
			h[i][1] = fmt.Sprintf("-scale-only -scale-n %s -scale-reps %d -scale-flood %d -idle %v -only %s", f.sizes, f.reps, f.flood, s.idle, s.only)
		}
	}
	t := runScaleSection(sc, work)
	took := time.Since(began).Round(time.Second)
	fmt.Println()
	fmt.Print(t.text())
	fmt.Printf("\nrun took %v; logs in %s\n", took, s.logDir)
	if s.md != "" {
		md := h.markdown() + "\n" + t.markdown() + fmt.Sprintf("\nThe run took %v.\n", took)
		if err := os.WriteFile(s.md, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "emperor-bench:", err)
			return 1
		}
	}
	return 0
}
