package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/internal/usergroup"
	"github.com/emperor-dev/emperor/monitor"
)

// processSettings are the uWSGI options that shape the Emperor process
// itself: who it runs as (uid, gid, cap), where (chdir), its umask, its
// lock files (flock), its fd limit (max-fd), its stats address given as
// uWSGI's instance option (stats), and the list of monitor schemes.
type processSettings struct {
	uid, gid    string
	caps        string
	chdir       string
	umask       string
	flocks      []string // "exit:PATH" (flock, flock2) or "wait:PATH" (flock-wait, flock-wait2)
	maxFD       int
	stats       []config.Option // stats, stats-server
	monitorList bool
	strict      bool
	listeners   []earlyListener // bound before the drop (listeners.go)
}

// options are the Settings of p, with uWSGI's names.
func (p *processSettings) options() []config.Setting {
	return []config.Setting{
		{Name: "uid", Help: "drop to this user (name or number) once started; vassals run as it too", Set: checked(&p.uid, func(v string) error {
			_, _, err := usergroup.User(v)
			return err
		})},
		{Name: "gid", Help: "drop to this group (name or number) once started", Set: checked(&p.gid, func(v string) error {
			_, err := usergroup.Group(v)
			return err
		})},
		{Name: "cap", Help: "capabilities the Emperor keeps after uid (setuid,setgid: the paranoid tyrant)", Set: checked(&p.caps, func(v string) error {
			_, err := capabilities.Parse(v)
			return err
		})},
		config.StringSetting("chdir", "change to this directory once privileges are dropped", &p.chdir),
		{Name: "umask", Help: "the Emperor's umask (octal), inherited by vassals", Set: p.setUmask},
		config.ListSetting("flock", "lock this existing file (fcntl) for the Emperor's life; exit if another holds it", &p.flocks, "exit:"),
		config.ListSetting("flock2", "same as flock", &p.flocks, "exit:"),
		config.ListSetting("flock-wait", "lock this existing file for the Emperor's life, waiting while another holds it", &p.flocks, "wait:"),
		config.ListSetting("flock-wait2", "same as flock-wait", &p.flocks, "wait:"),
		{Name: "max-fd", Help: "RLIMIT_NOFILE (soft and hard) of the Emperor and its vassals", Set: p.setMaxFD},
		uwsgiFlag("imperial-monitor-list", "list the monitor schemes and exit", &p.monitorList),
		uwsgiFlag("imperial-monitors-list", "same as imperial-monitor-list", &p.monitorList),
		uwsgiFlag("strict", "a key that is no uWSGI option is an error, not a placeholder", &p.strict),
		uwsgiFlag("die-on-term", "accepted: SIGTERM always starts Ragnarok", new(bool)),
		uwsgiFlag("no-orphans", "accepted: vassals always die with the Emperor", new(bool)),
	}
}

// acknowledged are options accepted with a line saying what the Emperor
// already does in their place.
var acknowledged = map[string]string{
	"die-on-term": "SIGTERM always starts Ragnarok here (uWSGI's standalone Emperor does the same; a uWSGI master would reload without it)",
	"no-orphans":  "vassals always die with the Emperor: each gets SIGKILL as its parent-death signal, and its cgroup is killed whole",
}

// uwsgiFlag is a flag read as uWSGI reads one: false, off, no or 0 turn it
// off (case aside, spaces trimmed), any other value, or none, turns it on.
func uwsgiFlag(name, help string, p *bool) config.Setting {
	return config.Setting{Name: name, Help: help, Set: func(v string) error {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "false", "off", "no", "0":
			*p = false
		default:
			*p = true
		}
		return nil
	}}
}

// checked sets *p to the trimmed value once check accepts it, so that a
// bad user, group or capability is refused naming its file and line.
func checked(p *string, check func(string) error) func(string) error {
	return func(v string) error {
		v = strings.TrimSpace(v)
		if err := check(v); err != nil {
			return err
		}
		*p = v
		return nil
	}
}

func (p *processSettings) setUmask(v string) error {
	v = strings.TrimSpace(v)
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o777 {
		return &config.Error{Err: fmt.Errorf("%q is not an octal umask", v), Hint: "for example 022"}
	}
	p.umask = v
	return nil
}

func (p *processSettings) setMaxFD(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return fmt.Errorf("%q is not a positive integer", v)
	}
	p.maxFD = n
	return nil
}

// finish runs once every option is applied: stats, uWSGI's own stats
// server of an instance, serves the Emperor's stats when emperor-stats is
// not set.
func (p *processSettings) finish(s *settings) {
	for _, o := range p.stats {
		addr := strings.TrimSpace(o.Value)
		if s.stats == "" && addr != "" {
			s.stats = addr
			s.notices = append(s.notices, notice{opt: o, msg: "serving the Emperor's stats on this address",
				why: "emperor-stats is not set; this Emperor has no instance stats of its own, so stats serves the Emperor's"})
			continue
		}
		s.notices = append(s.notices, notice{opt: o, msg: "option ignored", warn: true,
			why: "emperor-stats is set and serves the Emperor's stats; this Emperor has no instance stats of its own"})
	}
}

// printMonitorList writes the monitor schemes as uWSGI's
// imperial-monitor-list does.
func printMonitorList(w io.Writer) {
	fmt.Fprintln(w, "\n*** loaded imperial monitors ***")
	fmt.Fprintln(w, "dir\nglob")
	for _, name := range monitor.Schemes() {
		if name != "dir" && name != "glob" {
			fmt.Fprintln(w, name)
		}
	}
	fmt.Fprintln(w, "--- end of imperial monitors list ---")
}

// setup applies p to the process, in uWSGI's order: umask and lock files
// first, max-fd while still root (uWSGI sets it after the drop, where
// raising the hard limit fails), then uid, gid and cap (a re-execution,
// see dropPrivileges), the tyrant check, and chdir. release closes the
// lock files when the Emperor is done.
func (p *processSettings) setup(log *slog.Logger, tyrant bool) (release func(), err error) {
	first := log // the image that dropped privileges logged these already
	if os.Getenv(dropEnv) != "" {
		first = slog.New(slog.DiscardHandler)
	}
	if p.umask != "" {
		n, _ := strconv.ParseUint(p.umask, 8, 32)
		old := syscall.Umask(int(n))
		first.Info("umask set", "umask", fmt.Sprintf("%03o", n), "was", fmt.Sprintf("%03o", old))
	}
	held, err := p.lockFiles(first)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeAll(held)
		}
	}()
	if p.maxFD > 0 {
		lim := syscall.Rlimit{Cur: uint64(p.maxFD), Max: uint64(p.maxFD)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return nil, fmt.Errorf("max-fd %d: %w", p.maxFD, os.NewSyscallError("setrlimit", err))
		}
		first.Info("file descriptor limit set", "max-fd", p.maxFD)
	}
	if err := p.dropPrivileges(log, held, tyrant); err != nil {
		return nil, err
	}
	if p.chdir != "" {
		if err := os.Chdir(p.chdir); err != nil {
			return nil, fmt.Errorf("chdir: %w", err)
		}
		log.Info("changed directory", "chdir", p.chdir)
	}
	return func() { closeAll(held) }, nil
}

// ids are the uid and gid the Emperor drops to, -1 for those it keeps
// (and for a name that does not resolve: setup then says why).
func (p *processSettings) ids() (uid, gid int) {
	uid, gid = -1, -1
	if p.uid != "" {
		if u, primary, err := usergroup.User(p.uid); err == nil {
			uid, gid = u, primary
		}
	}
	if p.gid != "" {
		if g, err := usergroup.Group(p.gid); err == nil {
			gid = g
		}
	}
	return uid, gid
}
