package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// The table: row definitions, targets, cells and the text and markdown
// forms.

type unit int

const (
	unitMS  unit = iota // a duration in ms
	unitCPU             // ms of CPU per 30 s
	unitMiB
)

// rowDef is one line of the table.
type rowDef struct {
	key, label string
	unit       unit
	p90        bool
	// target judges the row, given the p50s; "" when the row has none.
	target func(uw, ours float64) string
}

func under50(_, ours float64) string {
	if math.IsNaN(ours) {
		return ""
	}
	return verdict(ours < 50, "ours < 50 ms")
}

func ratioAtLeast(r float64, what string) func(uw, ours float64) string {
	return func(uw, ours float64) string {
		if math.IsNaN(uw) || math.IsNaN(ours) || math.IsInf(uw, 0) || uw == 0 && ours == 0 {
			return ""
		}
		return verdict(uw/ours >= r, what)
	}
}

func verdict(ok bool, what string) string {
	if ok {
		return what + ": ok"
	}
	return what + ": MISSED"
}

func rowDefs(sizes []int) []rowDef {
	defs := []rowDef{
		{"touch", "touch → reload received (old worker exits)", unitMS, true, under50},
		{"touchserve", "touch → serving again (new worker answers)", unitMS, true, nil},
		{"spawn", "new file → vassal spawned (master exec'ed)", unitMS, true, under50},
		{"newfile", "new file → serving", unitMS, true, nil},
		{"stop", "delete → stop received (worker exits)", unitMS, true, under50},
		{"delete", "delete → gone (master exited)", unitMS, true, nil},
		{"kill", "kill -9 master → serving again", unitMS, true, nil},
	}
	defs = append(defs, rowDef{"crashloop", "emperor CPU while one vassal crash-loops, CPU-time clock (ms per 30 s)", unitCPU, false, nil})
	for _, n := range sizes {
		defs = append(defs, rowDef{fmt.Sprintf("cold:%d", n), fmt.Sprintf("cold start N=%d to all serving, default policy", n), unitMS, true, ratioAtLeast(1, "no slower")})
	}
	return defs
}

func steadyDefs(n int) []rowDef {
	return []rowDef{
		{"cpu", fmt.Sprintf("emperor CPU at steady state, N=%d (ms per 30 s)", n), unitCPU, false, ratioAtLeast(10, "≤ 1/10 of uWSGI")},
		{"cpuns", fmt.Sprintf("emperor CPU at steady state, N=%d, CPU-time clock (ms per 30 s)", n), unitCPU, false, ratioAtLeast(10, "≤ 1/10 of uWSGI")},
		{"rss", fmt.Sprintf("emperor RSS at steady state, N=%d (MiB)", n), unitMiB, false, ratioAtLeast(0.5, "≤ 2× uWSGI")},
		{"ragnarok", fmt.Sprintf("Ragnarok, N=%d (until the emperor and every vassal exited)", n), unitMS, false, ratioAtLeast(1, "no slower")},
	}
}

type table struct {
	head  []string
	rows  [][]string
	notes []string
}

func buildTable(sizes, ran []int, sizeNotes map[int]string, res map[string]*rowSet) *table {
	t := &table{head: []string{"metric", "uwsgi p50", "uwsgi p90", "ours p50", "ours p90", "ratio (uwsgi/ours)", "target"}}
	defs := rowDefs(sizes)
	if len(ran) > 0 {
		defs = append(defs, steadyDefs(ran[len(ran)-1])...)
	}
	for _, d := range defs {
		row := []string{d.label}
		var p50 [2]float64
		for i, side := range []string{"uwsgi", "ours"} {
			rs := res[side]
			p50[i] = math.NaN()
			if rs == nil {
				row = append(row, "-", "-")
				continue
			}
			v := rs.samples[d.key]
			if len(v) == 0 {
				why := "n/a"
				if n, ok := strings.CutPrefix(d.key, "cold:"); ok && sizeNotes[atoi(n)] != "" {
					why = "skipped"
				}
				row = append(row, why, "-")
			} else {
				var cells []string
				p50[i], cells = sampleCells(v, d.unit, d.p90)
				row = append(row, cells...)
				if k := countInf(v); k > 0 {
					t.notes = append(t.notes, fmt.Sprintf("%s, %s: %d of %d timed out", d.label, side, k, len(v)))
				}
			}
			for _, n := range rs.notes[d.key] {
				t.notes = append(t.notes, fmt.Sprintf("%s, %s: %s", strings.TrimSpace(d.label), side, n))
			}
		}
		ratio, target := ratioCell(p50[0], p50[1]), ""
		if d.target != nil {
			target = d.target(p50[0], p50[1])
		}
		row = append(row, ratio, target)
		t.rows = append(t.rows, row)
	}
	if len(ran) > 0 {
		t.notes = append(t.notes, "emperor CPU from utime+stime counts whole 10 ms ticks (0 means under 10 ms in the window); "+
			"the CPU-time clock row is the same measure at ns precision")
	}
	for _, side := range []string{"uwsgi", "ours"} {
		if rs := res[side]; rs != nil {
			for _, n := range rs.notes["load"] {
				t.notes = append(t.notes, fmt.Sprintf("%s: %s", side, n))
			}
		}
	}
	for _, n := range sizes {
		if sizeNotes[n] != "" {
			t.notes = append(t.notes, fmt.Sprintf("cold start N=%d: %s", n, sizeNotes[n]))
		}
	}
	return t
}

// sampleCells returns the p50 of a row's samples and its two cells: the
// p50 and, when wanted and there is more than one sample, the p90.
func sampleCells(v []float64, u unit, withP90 bool) (float64, []string) {
	p50 := percentile(v, 50)
	p90 := "-"
	if withP90 && len(v) > 1 {
		p90 = format(percentile(v, 90), u)
	}
	return p50, []string{format(p50, u), p90}
}

// ratioCell is the uwsgi/ours cell of a row, "-" unless both p50s are
// finite numbers.
func ratioCell(uw, ours float64) string {
	switch {
	case math.IsNaN(uw) || math.IsNaN(ours) || math.IsInf(uw, 0) || math.IsInf(ours, 0):
		return "-"
	case uw == 0 && ours == 0:
		return "n/a (both 0)"
	case ours == 0:
		return "∞"
	}
	return fmt.Sprintf("%.2f", uw/ours)
}

func percentile(v []float64, p int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(float64(p)/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func countInf(v []float64) int {
	n := 0
	for _, x := range v {
		if math.IsInf(x, 1) {
			n++
		}
	}
	return n
}

func format(v float64, u unit) string {
	if math.IsInf(v, 1) {
		return "timeout"
	}
	switch u {
	case unitMiB:
		return fmt.Sprintf("%.1f MiB", v)
	case unitCPU:
		return fmt.Sprintf("%.1f ms", v)
	}
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func (t *table) text() string {
	w := make([]int, len(t.head))
	for _, r := range append([][]string{t.head}, t.rows...) {
		for i, c := range r {
			w[i] = max(w[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(r []string) {
		for i, c := range r {
			pad := w[i] - len([]rune(c))
			if i == 0 || i == len(r)-1 {
				b.WriteString(c + strings.Repeat(" ", pad))
			} else {
				b.WriteString(strings.Repeat(" ", pad) + c)
			}
			if i < len(r)-1 {
				b.WriteString("  ")
			}
		}
		b.WriteString("\n")
	}
	line(t.head)
	for _, r := range t.rows {
		line(r)
	}
	writeNotes(&b, t.notes)
	return b.String()
}

func (t *table) markdown() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.head, " | ") + " |\n|")
	for i := range t.head {
		if i == 0 || i == len(t.head)-1 {
			b.WriteString("---|")
		} else {
			b.WriteString("---:|")
		}
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	writeNotes(&b, t.notes)
	return b.String()
}

func writeNotes(w io.Writer, notes []string) {
	if len(notes) == 0 {
		return
	}
	fmt.Fprintln(w, "\nnotes:")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}
