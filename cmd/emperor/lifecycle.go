package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/emperor-dev/emperor/config"
)

// lifecycleSettings are the options about the Emperor process's life, with
// uWSGI's names: where it logs (logging.go), whether it detaches
// (daemon.go), its pidfiles (pidfiles.go), the files whose touch restarts
// it (touchreload.go), the hooks around its start (starthooks.go) and
// those around each vassal's start and stop (emperor/hooks.go).
type lifecycleSettings struct {
	logto, logto2     string
	logDate           string // "" off, "true" on, otherwise a strftime format
	logReopen         bool
	logfileChown      bool
	disableLogging    bool
	daemonize         string
	daemonize2        string
	pidfile, pidfile2 string
	safePidfile       string
	safePidfile2      string
	emperorPidfile    string
	vacuum            bool
	touchReload       []string
	hooks             startHooks // hook-* and exec-* around the Emperor's start
	vassalsStartHook  string
	vassalsStopHook   string
	restart           restartState // set by touch-reload (touchreload.go)
	log               *logFile     // the log file in use (logging.go)
	exe               string       // this binary, resolved at start, for a restart
	daemon            bool         // this process is the daemon daemonize started (daemon.go)
	restarted         bool         // this process is a touch-reload restart (touchreload.go)
	detached          *os.File     // daemonize2: tells the first process the daemon is up (daemon.go)
	foreground        string       // why daemonize does not detach, if it does not (daemon.go)
}

// options are the settings' options, with uWSGI's names.
func (p *lifecycleSettings) options() []config.Setting {
	return append([]config.Setting{
		config.StringSetting("logto", "append the Emperor's log (and its vassals' output) to FILE, or send it to a udp HOST:PORT", &p.logto),
		config.StringSetting("logto2", "as logto, opened once the Emperor's settings are applied (uWSGI: after privileges drop)", &p.logto2),
		{Name: "log-date", Help: "time of each log line as a strftime format (bare or true: the default RFC 3339 time)", Set: p.setLogDate},
		{Name: "logdate", Help: "alias of log-date", Set: p.setLogDate},
		uwsgiFlag("log-reopen", "reopen the log file on SIGHUP and on a restart (for logrotate)", &p.logReopen),
		uwsgiFlag("logfile-chown", "chown the log file to the user the Emperor runs as", &p.logfileChown),
		uwsgiFlag("disable-logging", "uWSGI's request logging off: the Emperor logs no requests, accepted and does nothing", &p.disableLogging),
		config.StringSetting("daemonize", "detach from the terminal and log to FILE (/dev/null allowed)", &p.daemonize),
		config.StringSetting("daemonize2", "as daemonize, once the start hooks have run", &p.daemonize2),
		config.StringSetting("pidfile", "write the Emperor's pid to FILE at start", &p.pidfile),
		config.StringSetting("pidfile2", "write the Emperor's pid to FILE once its settings are applied", &p.pidfile2),
		config.StringSetting("safe-pidfile", "as pidfile, written atomically (a temporary file renamed)", &p.safePidfile),
		config.StringSetting("safe-pidfile2", "as pidfile2, written atomically (a temporary file renamed)", &p.safePidfile2),
		config.StringSetting("emperor-pidfile", "write the Emperor's pid to this file (removed at a clean exit)", &p.emperorPidfile),
		uwsgiFlag("vacuum", "remove pidfile, pidfile2, safe-pidfile and safe-pidfile2 at exit", &p.vacuum),
		config.ListSetting("touch-reload", "restart the Emperor (and its vassals) when FILE's mtime changes (repeatable)", &p.touchReload, ""),
		config.StringSetting("vassals-start-hook", "program run as PROGRAM NAME before each vassal's exec, with UWSGI_VASSALS_DIR", &p.vassalsStartHook),
		config.StringSetting("vassals-stop-hook", "program run as PROGRAM NAME after each vassal's death, with UWSGI_VASSALS_DIR", &p.vassalsStopHook),
	}, p.hooks.options()...)
}

// setLogDate reads log-date: bare or true, 1, on, yes turns dates on,
// false, off, no, 0 off; any other value is a strftime format. (uWSGI
// takes "false" for a format and prefixes each line with it.)
func (p *lifecycleSettings) setLogDate(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "1", "true", "on", "yes":
		p.logDate = "true"
	case "0", "false", "off", "no":
		p.logDate = ""
	default:
		p.logDate = v
	}
	return nil
}

// beforeDrop is the first of the phases run goes through around the
// Emperor's start, in uWSGI's order:
//
//	detach      daemonize: the first process returns there (daemon.go)
//	openLog     logto, or daemonize's file; on a restart only with log-reopen (logging.go)
//	beforeDrop  pidfile, safe-pidfile, hook/exec pre-jail (those three not on a restart),
//	            in-jail, as-root (as root only), logfile-chown
//	            (privileges drop here once uid/gid are acted on)
//	afterDrop   hook/exec as-user, logto2, pidfile2, safe-pidfile2, daemonize2, emperor-pidfile
//	serve       the Emperor; SIGHUP reopens the log, touch-reload restarts (touchreload.go)
//	atExit      hook/exec as-user-atexit; at an exit, vacuum's pidfiles and the emperor-pidfile go
//	            then, after a touch-reload, the re-exec (touchreload.go)
//
// uid and gid are the user the Emperor will run as, for logfile-chown; -1
// while it drops no privileges.
func (p *lifecycleSettings) beforeDrop(log *slog.Logger, timeout time.Duration, uid, gid int) error {
	if p.exe == "" {
		p.exe, _ = os.Executable()
	}
	if !p.restarted {
		if err := p.writeStartPidfiles(log); err != nil {
			return err
		}
		if err := p.hooks.run(log, "pre-jail", timeout); err != nil {
			return err
		}
	}
	if len(p.hooks.postJail) > 0 {
		log.Info("hook-post-jail/exec-post-jail not run: this Emperor runs in no jail (uWSGI skips them too)")
	}
	if err := p.hooks.run(log, "in-jail", timeout); err != nil {
		return err
	}
	if os.Getuid() == 0 {
		if err := p.hooks.run(log, "as root", timeout); err != nil {
			return err
		}
	} else if len(p.hooks.asRoot) > 0 {
		log.Info("hook-as-root/exec-as-root not run: the Emperor does not run as root (uWSGI skips them too)")
	}
	if p.logfileChown {
		if err := p.log.chown(uid, gid); err != nil {
			return fmt.Errorf("logfile-chown: %w", err)
		}
	}
	if p.foreground != "" {
		log.Warn("daemonize: staying in the foreground", "why", p.foreground)
	}
	if p.disableLogging {
		log.Info("disable-logging: the Emperor serves no requests, so it logs none; vassals read their own")
	}
	return nil
}

// afterDrop runs the as-user hooks, opens logto2, writes pidfile2 and
// safe-pidfile2, detaches with daemonize2 and writes the emperor-pidfile.
func (p *lifecycleSettings) afterDrop(log *slog.Logger, timeout time.Duration) error {
	if err := p.hooks.run(log, "as user", timeout); err != nil {
		return err
	}
	if err := p.openLogto2(log); err != nil {
		return err
	}
	if !p.restarted {
		if err := p.writeLatePidfiles(log); err != nil {
			return err
		}
	}
	if err := p.detached2(log); err != nil { // daemonize2 (daemon.go)
		return err
	}
	return writePidfile(log, "emperor-pidfile", p.emperorPidfile, false)
}

// atExit runs when the Emperor ends or restarts: the as-user-atexit hooks,
// then, at an exit, vacuum's pidfiles and the emperor-pidfile go.
func (p *lifecycleSettings) atExit(log *slog.Logger, timeout time.Duration) {
	if err := p.hooks.run(log, "atexit", timeout); err != nil {
		log.Warn("atexit hook failed", "err", err)
	}
	if p.restart.asked() {
		return // same pid after the re-exec: the pidfiles stay true
	}
	p.removePidfiles(log)
}
