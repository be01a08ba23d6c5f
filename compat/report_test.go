package compat_test

import (
	"fmt"
	"regexp"
	"strings"
)

// errorWords mark the line that says why a program refused to start.
var errorWords = regexp.MustCompile(`(?i)error|unknown|unrecognized|invalid|refus|fail|cannot|can't|unable|` +
	`no such|denied|fatal|panic|game over|not supported|not allowed|must |bad `)

// firstErrorLine picks the line of a refusal's output that says why: the
// first line with an error word (uWSGI's "*** WARNING" banners excluded),
// else the last line; status (how it ended) is appended.
func firstErrorLine(output, status string) string {
	var pick, last string
	for _, l := range strings.Split(output, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		last = l
		if pick == "" && errorWords.MatchString(l) && !strings.Contains(l, "WARNING") {
			pick = l
		}
	}
	if pick == "" {
		pick = last
	}
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
func corpusTable(impls []impl, results [][]verdict, only func(corpusCase) bool) string {
	var b strings.Builder
	count := make([]int, len(impls))
	run := 0
	b.WriteString("| config | uWSGI 2.0 | ours | our first error line | uWSGI's first error line |\n|---|---|---|---|---|\n")
	for ci, c := range corpusCases {
		if !only(c) {
			continue
		}
		if c.leftOut != "" {
			fmt.Fprintf(&b, "| %s | left out | left out | %s | |\n", c.file, c.leftOut)
			continue
		}
		run++
		uw, ours := results[ci][0], results[ci][1]
		for ii, v := range results[ci] {
			if v.started {
				count[ii]++
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", c.file, uw, ours, cell(ours), cell(uw))
	}
	for ii, im := range impls {
		fmt.Fprintf(&b, "\n%s starts %d of %d.", im.name, count[ii], run)
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
