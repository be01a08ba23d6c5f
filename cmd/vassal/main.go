// Command vassal runs an application as a vassal of an Emperor, or
// standalone:
//
//	vassal --ini app.ini
//	vassal --ini emperor://app.ini     (config text from the Emperor)
//	vassal --ini exec:///srv/app.ini   (the config is what the program prints)
//	vassal --config app.conf           (any suffix: the format is detected)
//	vassal --set http-socket=:8080 --set "worker-exec=./server"
//
// See package vassal for the options it reads and the protocol it speaks.
// It exits 0 after a requested stop (Emperor stop byte, SIGTERM, SIGINT,
// SIGQUIT) and 1 on a config error, a socket it cannot bind, workers that
// never become ready, or when the Emperor's channel closes. SIGHUP reloads
// gracefully; so does SIGTERM with die-on-term = false.
// It logs to stderr; set VASSAL_DEBUG=1 to also log every protocol byte.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/emperor-dev/emperor/vassal"
)

const usage = `usage: vassal --ini app.ini | --xml F | --yaml F | --json F | --config F | --set key=value ...

Runs worker-exec in processes workers on the sockets the config names
(http-socket, socket, uwsgi-socket, shared-socket, fd://N, fd 0), passing
them with LISTEN_FDS. Under an Emperor (UWSGI_EMPEROR_FD set) it speaks the
Emperor protocol; a config may then be emperor://NAME, read from
UWSGI_EMPEROR_FD_CONFIG. A config may be exec://COMMAND: COMMAND's output
(at most 30 s). --config F reads F by its suffix, or its detected format. See the documentation of package vassal for every
option (go doc github.com/emperor-dev/emperor/vassal).
SIGHUP reloads; SIGTERM stops (reloads with die-on-term = false).
`

func main() {
	// The hidden worker-spawn mode comes first: it must not start
	// anything, it only sets LISTEN_PID and execs the worker command.
	if len(os.Args) > 1 && os.Args[1] == vassal.ListenExecArg {
		vassal.ListenExec(os.Args[2:])
	}

	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprint(os.Stderr, usage)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}

	level := slog.LevelInfo
	if os.Getenv("VASSAL_DEBUG") != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP)

	err := vassal.Run(context.Background(), vassal.Options{
		Args:    os.Args[1:],
		Logger:  logger,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Signals: sigs,
	})
	if err != nil {
		logger.Error("vassal failed", "vassal", vassal.NameOf(os.Args[1:]), "err", err)
		signal.Stop(sigs)
		os.Exit(1)
	}
}
