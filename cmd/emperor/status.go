package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/emperor-dev/emperor/emperor"
)

// statusUsage is the synopsis of `emperor status`.
const statusUsage = "usage: emperor status ADDR [NAME-GLOB] [--state STATE] [--problems] [--json]   (ADDR: the emperor-stats address)"

// status is `emperor status ADDR [NAME-GLOB] [--state STATE] [--problems]
// [--json]`: it reads the stats server at ADDR (host:port or a unix socket
// path, the emperor-stats value) and prints a summary line and one line per
// vassal, only those the filters keep, or the raw JSON for scripts.
func status(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var addr string
	var f statusFilter
	asJSON := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--json" || a == "-json":
			asJSON = true
		case a == "--problems" || a == "-problems":
			f.problems = true
		case a == "--state" || a == "-state":
			if i+1 == len(args) {
				fmt.Fprintf(stderr, "emperor status: --state needs a state\n%s\n", statusUsage)
				return 2
			}
			i++
			f.state = args[i]
		case strings.HasPrefix(a, "--state="):
			f.state = strings.TrimPrefix(a, "--state=")
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(stderr, "emperor status: unknown flag %s\n%s\n", a, statusUsage)
			return 2
		case addr == "":
			addr = a
		case f.glob == "":
			f.glob = a
		default:
			fmt.Fprintln(stderr, statusUsage)
			return 2
		}
	}
	if err := f.check(); err != nil {
		fmt.Fprintf(stderr, "emperor status: %v\n", err)
		return 2
	}
	if asJSON && f.active() {
		fmt.Fprintln(stderr, "emperor status: --json prints the stats as they are: no filters")
		return 2
	}
	if addr == "" {
		fmt.Fprintln(stderr, statusUsage)
		return 2
	}
	c, err := dialStats(ctx, addr)
	if err != nil {
		fmt.Fprintf(stderr, "emperor status: %v\n", err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	raw, err := io.ReadAll(c)
	if err != nil {
		fmt.Fprintf(stderr, "emperor status: reading %s: %v\n", addr, err)
		return 1
	}
	raw = withoutHTTPHead(raw)
	if asJSON {
		stdout.Write(raw)
		return 0
	}
	var s emperor.Stats
	if err := json.Unmarshal(raw, &s); err != nil {
		fmt.Fprintf(stderr, "emperor status: %s did not answer with emperor stats: %v\n", addr, err)
		return 1
	}
	printStatus(stdout, &s, &f)
	return 0
}

// withoutHTTPHead drops the status line and headers of a stats server
// with stats-http (it answers a client that sends nothing after a second).
func withoutHTTPHead(raw []byte) []byte {
	if !bytes.HasPrefix(raw, []byte("HTTP/")) {
		return raw
	}
	if _, body, ok := bytes.Cut(raw, []byte("\r\n\r\n")); ok {
		return body
	}
	return raw
}

// dialStats connects to a stats server: an abstract unix socket for "@name"
// or "\0name", TCP for host:port, otherwise a unix socket path. An abstract
// name is tried first as uWSGI binds it ("\0name\0": it counts the NUL
// that ends the string), then as everyone else does ("\0name"); our Emperor
// answers on both, a real uWSGI Emperor on the first.
func dialStats(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	name, abstract := strings.CutPrefix(addr, "@")
	if !abstract {
		name, abstract = strings.CutPrefix(addr, `\0`)
	}
	switch {
	case abstract:
		if c, err := d.DialContext(ctx, "unix", "@"+name+"\x00"); err == nil {
			return c, nil
		}
		return d.DialContext(ctx, "unix", "@"+name) // its error names "@name"
	case strings.Contains(addr, ":"):
		return d.DialContext(ctx, "tcp", addr)
	}
	return d.DialContext(ctx, "unix", addr)
}

// printStatus prints s as a title, a summary line and a table, one line
// per vassal that f keeps (a line says how many it left out). Every text field
// goes through shown: names, states and reasons come from file names and
// tenants' configs, and must not move the cursor, colour the terminal or
// start a line of their own.
func printStatus(w io.Writer, s *emperor.Stats, f *statusFilter) {
	monitors := make([]string, len(s.Emperor))
	for i, m := range s.Emperor {
		monitors[i] = shown(m)
	}
	fmt.Fprintf(w, "Emperor pid %d governing %d vassals (%s)\n", s.Pid, len(s.Vassals), strings.Join(monitors, ", "))
	penalised := penalisedSet(s)
	printSummary(w, s, penalised)
	all := len(s.Vassals)
	s.Vassals = slices.DeleteFunc(s.Vassals, func(v emperor.VassalStats) bool { return !f.keep(&v, penalised) })
	if f.active() {
		fmt.Fprintf(w, "%d of %d vassals match\n", len(s.Vassals), all)
	}
	sort.Slice(s.Vassals, func(i, j int) bool {
		if s.Vassals[i].Monitor != s.Vassals[j].Monitor {
			return s.Vassals[i].Monitor < s.Vassals[j].Monitor
		}
		return s.Vassals[i].ID < s.Vassals[j].ID
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPID\tUPTIME\tRESTARTS\tLOYAL\tLAST REASON")
	for _, v := range s.Vassals {
		pid, up := "-", "-"
		if v.Pid > 0 {
			pid = fmt.Sprint(v.Pid)
			if v.State != "" { // a uWSGI Emperor reports no uptime
				up = (time.Duration(v.Uptime) * time.Second).String()
			}
		}
		loyal := "no"
		if v.Loyal == 1 {
			loyal = "yes"
		}
		state := v.State
		if state == "" { // a uWSGI Emperor's stats: no state of ours
			state = uwsgiState(&v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", shown(v.ID), shown(state), pid, up, v.Restarts, loyal, shown(v.Reason))
	}
	tw.Flush()
}

// uwsgiState names the state of a vassal of a uWSGI Emperor, which reports
// only its pid, its curse and what it said.
func uwsgiState(v *emperor.VassalStats) string {
	switch {
	case v.Cursed != 0:
		return "stopping"
	case v.Pid <= 0:
		return "-"
	case v.Accepting == 1:
		return "accepting"
	case v.Ready == 1:
		return "ready"
	}
	return "starting"
}

// shown is text from the stats server as the table prints it: as it is
// when it is valid UTF-8 made of printable characters (strconv.IsPrint:
// the ASCII space is the only space) other than a backslash, otherwise
// quoted as Go quotes strings, so that control characters (newline, tab,
// ESC), invisible format characters and invalid bytes read as escapes like
// \x1b and \xff, and a name cannot pass for another one escaped.
func shown(s string) string {
	if s == "" {
		return s
	}
	for _, r := range s {
		if r == utf8.RuneError || r == '\\' || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
