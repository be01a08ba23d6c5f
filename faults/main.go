// Command faults is the fault suite behind `make faults`: it breaks the
// Emperor's world on purpose (kills, outages, full disks, hostile input)
// and prints one table row per fault: the fault, what must hold, the
// figure measured and whether it held. The same table goes to a Markdown
// file the README quotes (-out). Every fault is bounded in time, targets
// loopback only, and leaves nothing running or mounted.
//
// -short runs the quick version CI runs (smaller counts, shorter outages).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Scenario is one fault. Run breaks something and measures; it returns a
// Result (Held false when what must hold did not) or an error when the
// fault could not even be set up. Scenarios register themselves from
// init, one file per family.
type Scenario struct {
	// Order sorts the table; Name identifies it for -only.
	Order int
	Name  string
	// Fault says what is broken, Hold what must hold, as the table shows.
	Fault, Hold string
	// Timeout bounds Run (the context ends then); default 5 minutes.
	Timeout time.Duration
	Run     func(ctx context.Context, env *Env) (Result, error)
}

// Result is one measured row.
type Result struct {
	Measured string
	Held     bool
}

var scenarios []Scenario

func register(s Scenario) { scenarios = append(scenarios, s) }

func main() { os.Exit(run(os.Args[1:], os.Stdout)) }

func run(args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("faults", flag.ContinueOnError)
	short := fs.Bool("short", false, "the quick version (CI): smaller counts, shorter outages")
	only := fs.String("only", "", "run only the scenarios whose name contains this")
	out := fs.String("out", "", "also write the table, as Markdown, to this file")
	bin := fs.String("bin", "bin", "directory holding the emperor, vassal and hello binaries (make build)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *short {
		getTimeout = 10 * time.Second
	}
	if os.Geteuid() != 0 {
		// It mounts filesystems, makes cgroups and hands files to other
		// users. Like the tests, it skips with the reason, except in CI.
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "faults: must run as root")
			return 2
		}
		fmt.Fprintln(os.Stderr, "faults: skipped: the fault suite runs as root (it mounts filesystems, makes cgroups and chowns files)")
		return 0
	}
	env, err := newEnv(*bin, *short)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 2
	}
	defer env.Close()
	sort.SliceStable(scenarios, func(i, j int) bool { return scenarios[i].Order < scenarios[j].Order })
	var rows []row
	failed := 0
	for _, s := range scenarios {
		if *only != "" && !strings.Contains(s.Name, *only) {
			continue
		}
		r := runOne(env, s)
		if !r.held {
			failed++
		}
		fmt.Fprintf(os.Stderr, "faults: %-28s %s  %s\n", s.Name, verdict(r.held), r.measured)
		rows = append(rows, r)
	}
	printTable(stdout, rows)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(markdown(rows, *short)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			return 2
		}
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "faults: %d of %d did not hold\n", failed, len(rows))
		return 1
	}
	return 0
}

type row struct {
	name, fault, hold, measured string
	held                        bool
	took                        time.Duration
}

// runOne runs a scenario with its own temporary directory and cleanups,
// bounded by its timeout. A setup error is a row that did not hold.
func runOne(env *Env, s Scenario) row {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	began := time.Now()
	senv := env.scenario(s.Name)
	res, err := func() (res Result, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return s.Run(ctx, senv)
	}()
	senv.cleanup()
	if err != nil {
		res = Result{Measured: "error: " + err.Error()}
	} else if ctx.Err() != nil && !res.Held {
		res.Measured += fmt.Sprintf(" (timed out after %s)", timeout)
	}
	return row{name: s.Name, fault: s.Fault, hold: s.Hold, measured: res.Measured, held: res.Held && err == nil, took: time.Since(began)}
}

func verdict(ok bool) string {
	if ok {
		return "held"
	}
	return "BROKEN"
}

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tmust hold\tmeasured\t\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.fault, r.hold, r.measured, verdict(r.held))
	}
	tw.Flush()
}

func markdown(rows []row, short bool) string {
	var b strings.Builder
	host, _ := os.Hostname()
	kind := "full"
	if short {
		kind = "short (-short)"
	}
	fmt.Fprintf(&b, "<!-- written by `make faults` (%s run) on %s, %s -->\n\n", kind, host, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString("| fault | must hold | measured | |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(r.fault), cell(r.hold), cell(r.measured), verdict(r.held))
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
