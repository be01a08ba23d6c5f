package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/internal/uwsgiopts"
)

// What the Emperor does with an option it does not set itself, as uWSGI
// 2.0 would accept it but saying why (docs/migration.md lists them all):
//
//   - a uWSGI option that makes the Emperor process a server or a worker
//     pool (master, workers, http, socket, fastrouter, route, plugins, ...):
//     accepted with one line, since this Emperor serves no request itself;
//   - any other uWSGI option: accepted with one line and the reason;
//   - an Emperor option uWSGI's master branch has and this one has not
//     built yet: accepted with one line saying so;
//   - a key that is no uWSGI option, in a config file: a placeholder, as
//     in uWSGI, with one line unless some value uses it as %(key); strict
//     makes it an error naming file and line, as uWSGI's strict mode does;
//   - on the command line, a name uWSGI does not know: refused, as uWSGI's
//     getopt refuses it ("unrecognized option").

// notice is one line the Emperor logs about an option it accepted without
// acting on it as uWSGI would.
type notice struct {
	opt  config.Option
	msg  string
	why  string
	warn bool
}

func (n notice) log(l *slog.Logger) {
	level := slog.LevelInfo
	if n.warn {
		level = slog.LevelWarn
	}
	attrs := []any{"option", n.opt.Key}
	if n.opt.File != "" {
		attrs = append(attrs, "file", n.opt.File, "line", n.opt.Line)
	} else {
		attrs = append(attrs, "from", "command line")
	}
	l.Log(context.Background(), level, n.msg, append(attrs, "why", n.why)...)
}

const migrationGuide = "docs/migration.md"

// notBuilt are Emperor options of uWSGI (some of its master branch only)
// that other issues build; until then they are accepted with one line.
var notBuilt = map[string]string{
	"emperor-broodlord":           "broodlord mode is not built yet: vassals asking for reinforcements (byte 30) get none",
	"emperor-on-demand-extension": "on-demand vassals are not built yet: vassals start at once",
	"emperor-on-demand-ext":       "on-demand vassals are not built yet: vassals start at once",
	"emperor-on-demand-directory": "on-demand vassals are not built yet: vassals start at once",
	"emperor-on-demand-dir":       "on-demand vassals are not built yet: vassals start at once",
	"emperor-on-demand-exec":      "on-demand vassals are not built yet: vassals start at once",
	"emperor-use-fork-server":     "the fork server (a uWSGI 2.1 feature) is not built: vassals are spawned as usual",
	"vassal-fork-base":            "the fork server (a uWSGI 2.1 feature) is not built: vassals are spawned as usual",
	"emperor-fork-server-attr":    "the fork server (a uWSGI 2.1 feature) is not built: vassals are spawned as usual",
	"emperor-collect-attr":        "collecting [emperor] attributes by name (a uWSGI 2.1 option) is not built",
	"emperor-collect-attribute":   "collecting [emperor] attributes by name (a uWSGI 2.1 option) is not built",
	"emperor-wrapper-attr":        "per-vassal wrappers from attributes (a uWSGI 2.1 option) are not built",
	"emperor-chdir-attr":          "per-vassal directories from attributes (a uWSGI 2.1 option) are not built",
	"emperor-subreaper":           "not needed: the Emperor waits for its own vassals, and their cgroups catch what they leave (a uWSGI 2.1 option)",
}

// serverOptions make uWSGI's Emperor process a server or a worker pool.
var serverOptions = map[string]bool{
	"master": true, "workers": true, "processes": true, "threads": true, "enable-threads": true,
	"socket": true, "uwsgi-socket": true, "suwsgi-socket": true, "ssl-socket": true, "http-socket": true,
	"http11-socket": true, "https-socket": true, "fastcgi-socket": true, "fastcgi-nph-socket": true,
	"scgi-socket": true, "scgi-nph-socket": true, "raw-socket": true, "puwsgi-socket": true,
	"shared-socket": true, "undeferred-shared-socket": true, "zerg": true, "zerg-server": true,
	"plugin": true, "plugins": true, "need-plugin": true, "need-plugins": true, "autoload": true,
	"vhost": true, "need-app": true, "offload-threads": true, "lazy-apps": true, "lazy": true,
	"subscription-server": true, "subscribe-to": true, "subscribe2": true,
	"harakiri": true, "listen": true, "module": true, "wsgi-file": true,
	"mount": true, "static-map": true, "check-static": true, "mule": true, "spooler": true, "cron": true,
	"protocol": true, "socket-protocol": true,
}

// serverPrefixes are option families of the same kind.
var serverPrefixes = []string{
	"route", "response-route", "final-route", "error-route", "cheaper", "spooler-", "mule-", "harakiri-",
	"subscription-", "subscribe-", "offload-", "static-", "http-socket-", "https-socket-", "socket-",
	"legion", "cache2", "rpc-", "unique-cron", "cron2",
}

// ignoredWhy are the reasons for uWSGI options an emperor.ini often
// carries that mean nothing, or something already done, to this Emperor.
var ignoredWhy = map[string]string{
	"memory-report":          "the Emperor runs no workers to report on; see emperor status",
	"thunder-lock":           "the Emperor accepts no requests",
	"auto-procname":          "the Emperor does not rename its processes",
	"procname":               "the Emperor does not rename its processes",
	"procname-prefix":        "the Emperor does not rename its processes",
	"procname-prefix-spaced": "the Emperor does not rename its processes",
	"procname-append":        "the Emperor does not rename its processes",
	"procname-master":        "the Emperor does not rename its processes",
	"emperor-procname":       "the Emperor does not rename its processes",
	"exit-on-reload":         "the Emperor has no reload of its own: SIGHUP reloads every vassal",
	"log-maxsize":            "size-based log rotation is not built: rotate with logrotate and log-reopen",
	"log-backupname":         "size-based log rotation is not built: rotate with logrotate and log-reopen",
	"early-emperor":          "there is no instance to start before: the Emperor starts first anyway",
	"enable-metrics":         "the Emperor's own metrics are emperor-metrics (Prometheus)",
	"py-autoreload":          "the Emperor runs no Python",
	"single-interpreter":     "the Emperor runs no interpreter",
	"chmod-socket":           "the Emperor binds no uWSGI socket",
	"chown-socket":           "the Emperor binds no uWSGI socket",
	"buffer-size":            "the Emperor accepts no requests",
	"post-buffering":         "the Emperor accepts no requests",
	"max-requests":           "the Emperor runs no workers",
	"reload-on-rss":          "the Emperor runs no workers",
	"evil-reload-on-rss":     "the Emperor runs no workers",
	"limit-as":               "address-space limits are not applied to the Emperor (set them per vassal)",
	"emperor-proxy-socket":   "a vassal's option (it reaches its Emperor through a proxy); give it to the vassal",
	"vassal-sos":             "a vassal's option (it asks its Emperor for reinforcements); give it to the vassal",
	"vassal-sos-backlog":     "a vassal's option (it asks its Emperor for reinforcements); give it to the vassal",
	"heartbeat":              "a vassal's option; the Emperor's side is emperor-required-heartbeat",
	"if-exists":              "config logic is read by the config parser; this uWSGI option reached the Emperor unread",
}

// attachWhy is the reason for attach-daemon and its kin.
const attachWhy = "the Emperor attaches no daemon: run each as a vassal of its own (our vassal: worker-exec = COMMAND), supervised like the rest"

// classify says how the Emperor treats key, which no Setting handles: a
// notice for a uWSGI option (or a not-yet-built one), ok false otherwise.
func classify(o config.Option) (n notice, ok bool) {
	if why, nb := notBuilt[o.Key]; nb && why != "" {
		return notice{opt: o, msg: "option accepted, not acted on", why: why, warn: true}, true
	}
	u, known := uwsgiopts.Lookup(o.Key)
	if !known {
		return notice{}, false
	}
	if isServerOption(o.Key, u) {
		return notice{opt: o, msg: "option ignored: this Emperor does not serve requests itself",
			why: "run a server or router as a vassal of its own; see " + migrationGuide, warn: true}, true
	}
	why := ignoredWhy[o.Key]
	if strings.HasPrefix(o.Key, "attach-") || strings.HasPrefix(o.Key, "smart-attach-") {
		why = attachWhy
	}
	if why == "" {
		why = "a uWSGI instance option that means nothing to an Emperor, which runs no app; see " + migrationGuide
	}
	return notice{opt: o, msg: "option ignored", why: why, warn: true}, true
}

// isServerOption reports whether a uWSGI option makes its process a
// server, a router or a worker pool.
func isServerOption(key string, u uwsgiopts.Option) bool {
	if u.Plugin != "" {
		return true // every plugin with options is a router, an app server or a request feature
	}
	if serverOptions[key] {
		return true
	}
	for _, p := range serverPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// unknownOption is the fate of a key that is no uWSGI option: refused in
// strict mode and on the command line, else a placeholder with a notice
// unless used as %(key). On the command line a key used as %(key) is
// accepted: config.Option does not tell "--set key=value", a placeholder
// in uWSGI, from "--key value".
func unknownOption(o config.Option, strict, used bool) (*notice, error) {
	if o.File == "" && !used && !strict {
		return nil, &config.Error{Key: o.Key, Err: fmt.Errorf("unrecognized option"),
			Hint: "uWSGI 2.0 has no such option (see emperor --help); a placeholder is --set-placeholder " + o.Key + "=VALUE"}
	}
	if strict {
		return nil, &config.Error{File: o.File, Line: o.Line, Key: o.Key, Err: fmt.Errorf("unknown config directive (strict mode)"),
			Hint: "strict mode allows no placeholder: remove the line, use set-placeholder, or drop strict"}
	}
	if used {
		return nil, nil
	}
	return &notice{opt: o, msg: "not a uWSGI option: kept as a placeholder, as uWSGI does",
		why: "nothing uses it as %(" + o.Key + "); a typo?", warn: true}, nil
}

// logNotices logs one line per notice, unless this is the image that
// dropped privileges by re-executing, whose first image logged them.
func (s *settings) logNotices(l *slog.Logger) {
	if os.Getenv(dropEnv) != "" {
		return
	}
	for _, n := range s.notices {
		n.log(l)
	}
}
