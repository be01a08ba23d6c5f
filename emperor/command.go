package emperor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// The command socket (emperor-command-socket) is a unix stream socket,
// mode 0600, so only its owner (root, usually) may command the Emperor (an
// abstract one, @name, admits the Emperor's uid and root only). A client
// sends one line and reads one line back:
//
//	reload NAME [MONITOR]        send byte 1 to a running vassal
//	stop NAME [MONITOR]          stop it and keep it down until start or a config change
//	start NAME [MONITOR]         start a vassal stopped by stop (or disabled)
//	blacklist-clear [NAME [MONITOR]]  lift respawn penalties
//	rescan                       rescan every monitor now
//
// The answer is "ok: ..." or "error: ...". MONITOR is needed only when two
// monitors hold a vassal of that name.

// command is one request from the command socket, answered by the loop.
type command struct {
	args  []string
	reply chan string
}

// answerCommand reads one command line and writes the loop's answer.
func (e *Emperor) answerCommand(ctx context.Context, c net.Conn) {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	cmd := command{args: strings.Fields(line), reply: make(chan string, 1)}
	answer := "error: the Emperor is not running"
	select {
	case e.commands <- cmd:
		select {
		case answer = <-cmd.reply:
		case <-e.done:
		}
	case <-e.done:
	case <-ctx.Done():
	}
	fmt.Fprintln(c, answer)
}

// command runs one command on the loop and returns its answer.
func (e *Emperor) command(args []string) string {
	if len(args) == 0 {
		return "error: empty command"
	}
	e.log.Info("command", "command", strings.Join(args, " "))
	verb, rest := args[0], args[1:]
	if verb == "rescan" {
		for _, m := range e.opts.Monitors {
			m.Rescan()
		}
		return "ok: rescanning"
	}
	if verb == "blacklist-clear" && len(rest) == 0 {
		n := e.clearPenalties(nil)
		return fmt.Sprintf("ok: cleared %d", n)
	}
	switch verb {
	case "reload", "stop", "start", "blacklist-clear":
	default:
		return fmt.Sprintf("error: unknown command %q (reload, stop, start, blacklist-clear, rescan)", verb)
	}
	if len(rest) == 0 || len(rest) > 2 {
		return "error: usage: " + verb + " NAME [MONITOR]"
	}
	v, err := e.find(rest)
	if err != nil {
		return "error: " + err.Error()
	}
	switch verb {
	case "reload":
		if v.state != Running {
			return fmt.Sprintf("error: %s is %s, not running", v.ev.Key.Name, v.state)
		}
		e.reload(v, "command")
		return "ok: reloading " + v.ev.Key.Name
	case "stop":
		switch v.state {
		case Running:
			e.stop(v, Hold, "stopped by command")
		case Waiting:
			e.transition(v, Disabled, Held, "stopped by command")
		default:
			return fmt.Sprintf("error: %s is %s", v.ev.Key.Name, v.state)
		}
		return "ok: stopping " + v.ev.Key.Name
	case "start":
		if v.state != Disabled {
			return fmt.Sprintf("error: %s is %s, not stopped", v.ev.Key.Name, v.state)
		}
		e.transition(v, Waiting, None, "started by command")
		e.spawn(v)
		return "ok: starting " + v.ev.Key.Name
	default: // blacklist-clear NAME
		e.clearPenalties(v)
		return "ok: cleared " + v.ev.Key.Name
	}
}

// suspends reports whether a new vassal waits for a start command
// (Options.WaitForCommand).
func (e *Emperor) suspends(v *vassal) bool {
	return e.opts.WaitForCommand && e.opts.CommandSocket != "" && !slices.Contains(e.opts.WaitForCommandIgnore, v.ev.Key.Name)
}

// find returns the vassal a command names: NAME, or NAME MONITOR when the
// name alone is ambiguous.
func (e *Emperor) find(args []string) (*vassal, error) {
	var found []*vassal
	for k, v := range e.vassals {
		if k.Name != args[0] {
			continue
		}
		if len(args) == 2 && args[1] != k.Monitor && args[1] != e.monitorNames[k.Monitor] {
			continue
		}
		found = append(found, v)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no vassal %q", strings.Join(args, " "))
	case 1:
		return found[0], nil
	}
	var mons []string
	for _, v := range found {
		mons = append(mons, e.monitorNames[v.ev.Key.Monitor])
	}
	return nil, fmt.Errorf("%q is in several monitors (%s): name one", args[0], strings.Join(mons, ", "))
}

// clearPenalties lifts the respawn penalty of v, or of every vassal when v
// is nil; a vassal waiting out its penalty spawns now. It returns how many
// had one.
func (e *Emperor) clearPenalties(only *vassal) int {
	n := 0
	if only == nil {
		e.thr = throttle{} // the throttle's level too (throttle.go)
		defer e.pumpThrottle()
	}
	for _, v := range e.vassals {
		if only != nil && v != only {
			continue
		}
		if v.unloyalDeaths > 0 {
			n++
		}
		v.unloyalDeaths = 0
		if v.state == Waiting && v.sub == Penalty {
			e.spawn(v)
		}
	}
	return n
}

// SendCommand sends one command line to the command socket at path and
// returns the Emperor's answer.
func SendCommand(ctx context.Context, path string, args ...string) (string, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, strings.Join(args, " ")); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && answer == "" {
		return "", err
	}
	answer = strings.TrimSpace(answer)
	if msg, ok := strings.CutPrefix(answer, "error: "); ok {
		return "", errors.New(msg)
	}
	return strings.TrimPrefix(answer, "ok: "), nil
}
