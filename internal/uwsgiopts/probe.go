package uwsgiopts

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// Plugins are the plugins whose options the catalogue holds: every plugin
// of Debian's uwsgi-core 2.0.21 package, plus emperor_pg and python3 (the
// uwsgi-plugin-emperor-pg and uwsgi-plugin-python3 packages), but
// mongrel2, which Debian's build cannot load (an undefined jansson symbol).
// Most add no option; they are listed so that a new version adding one is
// noticed.
var Plugins = []string{
	"cache", "carbon", "cgi", "cheaper_backlog2", "cheaper_busyness", "clock_monotonic", "clock_realtime",
	"corerouter", "echo", "emperor_amqp", "emperor_pg", "emperor_zeromq", "fastrouter", "forkptyrouter",
	"http", "logcrypto", "logfile", "logpipe", "logsocket", "logzmq", "msgpack", "nagios",
	"notfound", "pam", "ping", "pty", "python3", "rawrouter", "redislog", "router_basicauth", "router_cache",
	"router_expires", "router_hash", "router_http", "router_memcached", "router_metrics", "router_radius",
	"router_redirect", "router_redis", "router_rewrite", "router_static", "router_uwsgi", "router_xmldir",
	"rpc", "rrdtool", "rsyslog", "signal", "spooler", "ssi", "sslrouter", "stats_pusher_file",
	"stats_pusher_socket", "stats_pusher_statsd", "symcall", "syslog", "systemd_logger",
	"transformation_chunked", "transformation_gzip", "transformation_offload", "transformation_template",
	"transformation_tofile", "transformation_toupper", "tuntap", "ugreen", "webdav", "xattr", "zabbix",
	"zergpool",
}

// ErrPluginMissing is returned by Probe when uwsgi cannot load one of
// Plugins.
var ErrPluginMissing = errors.New("uwsgi plugin not installed")

// Probe asks the uwsgi binary for its options: the names from --help (for
// the core, then with each of plugins loaded), and each option's kind from
// how getopt_long treats it. "uwsgi /nonexistent.ini --NAME" fails at once
// with "requires an argument" for a required one; otherwise
// "--NAME=x" fails with "doesn't allow an argument" for a flag and gets
// past getopt for an optional one. Either way uwsgi then fails to read
// the nonexistent config file, so nothing is ever started. It returns the
// options and uwsgi's version.
func Probe(ctx context.Context, binary string, plugins []string) ([]Option, string, error) {
	dir, err := os.MkdirTemp("", "uwsgiopts-probe-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	p := &prober{binary: binary, dir: dir}
	out, err := p.run(ctx, "--version")
	if err != nil {
		return nil, "", err
	}
	version := strings.TrimSpace(out)
	core, err := p.help(ctx, "")
	if err != nil {
		return nil, "", err
	}
	seen := map[string]bool{}
	var opts []Option
	for _, o := range core {
		seen[o.Name] = true
		opts = append(opts, o)
	}
	for _, pl := range plugins {
		more, err := p.help(ctx, pl)
		if err != nil {
			return nil, "", err
		}
		for _, o := range more {
			if !seen[o.Name] {
				seen[o.Name] = true
				o.Plugin = pl
				opts = append(opts, o)
			}
		}
	}
	if err := p.kinds(ctx, opts); err != nil {
		return nil, "", err
	}
	return opts, version, nil
}

type prober struct {
	binary, dir string
}

// run runs uwsgi with args in an empty directory, stdin /dev/null and no
// UWSGI_* variable, and returns what it printed.
func (p *prober) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.binary, args...)
	cmd.Dir = p.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return "", fmt.Errorf("%s %s: %w", p.binary, strings.Join(args, " "), ctx.Err())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return "", fmt.Errorf("%s: %w", p.binary, err)
	}
	return string(out), nil
}

// help lists the options --help shows, with plugin loaded when not "".
func (p *prober) help(ctx context.Context, plugin string) ([]Option, error) {
	args := []string{"--help"}
	if plugin != "" {
		args = []string{"--plugin", plugin, "--help"}
	}
	out, err := p.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	if plugin != "" && strings.Contains(out, "UNABLE to load uWSGI plugin") {
		return nil, fmt.Errorf("%w: %s", ErrPluginMissing, plugin)
	}
	var opts []Option
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "-") {
			continue
		}
		field, _, _ := strings.Cut(line, " ")
		var o Option
		if short, long, ok := strings.Cut(field, "|"); ok {
			if len(short) != 2 {
				return nil, fmt.Errorf("--help line %q: unexpected shortcut", line)
			}
			o.Short, field = short[1], long
		}
		if !strings.HasPrefix(field, "--") || len(field) < 3 {
			return nil, fmt.Errorf("--help line %q: no option name", line)
		}
		o.Name = field[2:]
		opts = append(opts, o)
	}
	if len(opts) == 0 {
		return nil, fmt.Errorf("%s --help listed no option", p.binary)
	}
	return opts, nil
}

// kinds sets each option's Arg, a few probes at a time.
func (p *prober) kinds(ctx context.Context, opts []Option) error {
	var wg sync.WaitGroup
	errs := make([]error, len(opts))
	sem := make(chan struct{}, 4)
	for i := range opts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			opts[i].Arg, errs[i] = p.kind(ctx, opts[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

const missingConfig = "/nonexistent/uwsgiopts-probe.ini"

func (p *prober) kind(ctx context.Context, o Option) (Arg, error) {
	var pre []string
	if o.Plugin != "" {
		pre = []string{"--plugin", o.Plugin}
	}
	out, err := p.run(ctx, append(pre, missingConfig, "--"+o.Name)...)
	if err != nil {
		return 0, err
	}
	if err := unrecognized(out, o); err != nil {
		return 0, err
	}
	if strings.Contains(out, "'--"+o.Name+"' requires an argument") {
		return Required, nil
	}
	out, err = p.run(ctx, append(pre, missingConfig, "--"+o.Name+"=x")...)
	if err != nil {
		return 0, err
	}
	if err := unrecognized(out, o); err != nil {
		return 0, err
	}
	if strings.Contains(out, "'--"+o.Name+"' doesn't allow an argument") {
		return NoArg, nil
	}
	return Optional, nil
}

func unrecognized(out string, o Option) error {
	if strings.Contains(out, "unrecognized option") {
		return fmt.Errorf("option %s (plugin %q) from --help is unrecognized: %s", o.Name, o.Plugin, strings.TrimSpace(out))
	}
	return nil
}

// Render writes the Go source of catalogue.go for opts.
func Render(opts []Option, version string) ([]byte, error) {
	sorted := append([]Option(nil), opts...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Plugin != sorted[j].Plugin {
			return sorted[i].Plugin < sorted[j].Plugin
		}
		return sorted[i].Name < sorted[j].Name
	})
	var b bytes.Buffer
	b.WriteString("// Code generated by go generate (gen/main.go) from the installed uwsgi; DO NOT EDIT.\n\n")
	b.WriteString("package uwsgiopts\n\n")
	fmt.Fprintf(&b, "const catalogueVersion = %q\n\n", version)
	b.WriteString("var catalogue = []Option{\n")
	for _, o := range sorted {
		short := "0"
		if o.Short != 0 {
			short = fmt.Sprintf("'%c'", o.Short)
		}
		kind := map[Arg]string{NoArg: "NoArg", Required: "Required", Optional: "Optional"}[o.Arg]
		fmt.Fprintf(&b, "\t{%q, %s, %s, %q},\n", o.Name, short, kind, o.Plugin)
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}
