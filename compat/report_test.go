package compat_test

import (
	"cmp"
	"fmt"
	"regexp"
	"strings"
)

// errorWords mark the line that says why a program refused to start.
var errorWords = regexp.MustCompile(`(?i)error|unknown|unrecognized|invalid|refus|fail|cannot|can't|unable|` +
	`no such|denied|fatal|panic|game over|not supported|not allowed|must |bad `)

// notErrors mark warning and information lines, which may hold an error
// word without being the reason of a refusal.
var notErrors = regexp.MustCompile(`WARNING|level=(WARN|INFO|DEBUG)`)

// firstErrorLine picks the line of a refusal's output that says why: the
// first fatal line (ours: "emperor: ..." or level=ERROR), else the first line
// with an error word that is no warning, else the last line; status (how it
// ended) is appended.
func firstErrorLine(output, status string) string {
	var fatal, word, last string
	for _, l := range strings.Split(output, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		last = l
		if fatal == "" && (strings.HasPrefix(l, "emperor:") || strings.Contains(l, "level=ERROR")) {
			fatal = l
		}
		if word == "" && errorWords.MatchString(l) && !notErrors.MatchString(l) {
			word = l
		}
	}
	pick := cmp.Or(fatal, word, last)
	if pick == "" {
		pick = "(no output)"
	}
	const max = 200
	if len(pick) > max {
		pick = pick[:max] + "…"
	}
	if status != "" {
		pick += " [" + status + "]"
	}
	return pick
}

// corpusTable is the markdown table of every case's verdicts.
func corpusTable(title string, impls []impl, results [][]verdict, only func(corpusCase) bool) string {
	var b strings.Builder
	b.WriteString(title + "\n\n")
	count := make([]int, len(impls))
	up := make([]int, len(impls))
	run := 0
	b.WriteString("| config | uWSGI 2.0 | ours | probe vassal up (uWSGI/ours) | our first error line | uWSGI's first error line |\n|---|---|---|---|---|---|\n")
	for ci, c := range corpusCases {
		if !only(c) {
			continue
		}
		if c.leftOut != "" {
			fmt.Fprintf(&b, "| %s | left out | left out | | %s | |\n", c.file, c.leftOut)
			continue
		}
		run++
		uw, ours := results[ci][0], results[ci][1]
		for ii, v := range results[ci] {
			if v.started {
				count[ii]++
			}
			if v.vassalUp {
				up[ii]++
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", c.file, uw, ours, probeCell(uw, ours), cell(ours), cell(uw))
	}
	for ii, im := range impls {
		fmt.Fprintf(&b, "\n%s starts %d of %d, and spawns the probe vassal in %d.", im.name, count[ii], run, up[ii])
	}
	b.WriteString("\n")
	return b.String()
}

func cell(v verdict) string {
	s := v.line
	if v.err != nil {
		s = v.err.Error()
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

// probeCell says whether each implementation spawned the probe vassal.
func probeCell(vs ...verdict) string {
	if !vs[0].probed {
		return "no probe"
	}
	var parts []string
	for _, v := range vs {
		switch {
		case v.vassalUp:
			parts = append(parts, "yes")
		case v.started:
			parts = append(parts, "no")
		default:
			parts = append(parts, "-")
		}
	}
	return strings.Join(parts, "/")
}
