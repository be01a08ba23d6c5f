package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// logFile is where the Emperor's log goes when logto, logto2 or daemonize
// name a target. As uWSGI's logto does, the target replaces fds 1 and 2:
// the Emperor's own lines, its hooks' and its vassals' output (unless a
// vassal logs elsewhere itself) all land there.
type logFile struct {
	mu     sync.Mutex
	target string // a file, or a udp HOST:PORT
}

// openLogTarget opens a log target as uWSGI's logto does: HOST:PORT (any
// target holding a ':') is a connected udp socket, anything else a file
// opened for appending and created 0640 (less the umask).
func openLogTarget(target string) (*os.File, error) {
	if strings.Contains(target, ":") {
		c, err := net.Dial("udp", target)
		if err != nil {
			return nil, fmt.Errorf("udp log %s: %w", target, err)
		}
		defer c.Close()
		return c.(*net.UDPConn).File() // a blocking copy, as fd 2 must be
	}
	return os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
}

// open opens the target and puts it on fds 1 and 2.
func (l *logFile) open() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := openLogTarget(l.target)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("log %s: %w", l.target, os.NewSyscallError("dup3", err))
		}
	}
	return nil
}

// reopen opens the target again (log-reopen on SIGHUP): after logrotate
// renamed the file, the Emperor writes to a new one by its old name. A
// failure keeps the old file and is logged there.
func (l *logFile) reopen(log *slog.Logger) {
	if l == nil || strings.Contains(l.target, ":") {
		return
	}
	log.Info("log-reopen: reopening the log", "file", l.target)
	if err := l.open(); err != nil {
		log.Error("log-reopen: the log stays where it was", "file", l.target, "err", err)
		return
	}
	log.Info("log-reopen: log reopened", "file", l.target)
}

// chown gives the log file to uid and gid (logfile-chown), as uWSGI does
// before it drops privileges. With no user to drop to (-1, -1) nothing
// changes.
func (l *logFile) chown(uid, gid int) error {
	if l == nil || (uid < 0 && gid < 0) || strings.Contains(l.target, ":") {
		return nil
	}
	if err := unix.Fchown(2, uid, gid); err != nil {
		return fmt.Errorf("%s: %w", l.target, os.NewSyscallError("fchown", err))
	}
	return nil
}

// openLog sets up the log before the first line: logto, or daemonize's
// file when the Emperor does not detach (under systemd or another
// Emperor). In a daemon the first process already put the file on fds 1
// and 2; after a restart the file stays open unless log-reopen asks to
// open it again, as in uWSGI.
func (p *lifecycleSettings) openLog(dropped bool) error {
	target := p.logto
	if p.daemonize != "" {
		target = p.daemonize
	}
	if target == "" {
		return nil
	}
	p.log = &logFile{target: target}
	// The image that dropped privileges inherited fds 1 and 2 on the log
	// the image before it opened as root.
	if (p.daemon && p.daemonize != "") || (p.restarted && !p.logReopen) || dropped {
		return nil
	}
	if err := p.log.open(); err != nil {
		return fmt.Errorf("logto %s: %w", target, err)
	}
	return nil
}

// openLogto2 opens logto2, after the start hooks as uWSGI opens it after
// dropping privileges (this Emperor drops none yet: after its settings are
// applied).
func (p *lifecycleSettings) openLogto2(log *slog.Logger) error {
	if p.logto2 == "" || (p.restarted && !p.logReopen) {
		if p.logto2 != "" {
			p.log = &logFile{target: p.logto2}
		}
		return nil
	}
	log.Info("logging to logto2", "file", p.logto2)
	l := &logFile{target: p.logto2}
	if err := l.open(); err != nil {
		return fmt.Errorf("logto2 %s: %w", p.logto2, err)
	}
	p.log = l
	return nil
}

// replaceTime is the slog ReplaceAttr of log-date with a strftime format:
// each line's time in that format, local time, as uWSGI prefixes its lines
// with it. Without a format, nil: the handler's own RFC 3339 time.
func (p *lifecycleSettings) replaceTime() func([]string, slog.Attr) slog.Attr {
	format := p.logDate
	if format == "" || format == "true" {
		return nil
	}
	return func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
			return slog.String(slog.TimeKey, strftime(format, a.Value.Time().Local()))
		}
		return a
	}
}

// strftime formats t as C's strftime does for the conversions a log date
// uses; an unknown conversion is kept as written.
func strftime(format string, t time.Time) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			fmt.Fprintf(&b, "%d", t.Year())
		case 'C':
			fmt.Fprintf(&b, "%02d", t.Year()/100)
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			fmt.Fprintf(&b, "%02d", (t.Hour()+11)%12+1)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'b', 'h':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'u':
			fmt.Fprintf(&b, "%d", (int(t.Weekday())+6)%7+1)
		case 'w':
			fmt.Fprintf(&b, "%d", int(t.Weekday()))
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 's':
			fmt.Fprintf(&b, "%d", t.Unix())
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'R':
			b.WriteString(t.Format("15:04"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'c':
			b.WriteString(t.Format("Mon Jan _2 15:04:05 2006"))
		case 'x':
			b.WriteString(t.Format("01/02/06"))
		case 'X':
			b.WriteString(t.Format("15:04:05"))
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}
