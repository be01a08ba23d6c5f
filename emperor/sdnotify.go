package emperor

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"
)

// systemd's notify protocol (sd_notify): datagrams of "KEY=VALUE\n" lines
// to the unix socket named by NOTIFY_SOCKET ('@' for the abstract
// namespace). Under Type=notify the Emperor sends READY=1 once its first
// scan is applied, STATUS= whenever the number of vassals changes, WATCHDOG=1
// from the loop itself (so it stops when the loop stalls) and STOPPING=1 at
// Ragnarok. Messages go out from their own goroutine: a stuck systemd never
// stalls the loop.

// notifier sends sd_notify messages in order, from its own goroutine.
type notifier struct {
	out chan string
}

func newNotifier(ctx context.Context, socket string, logf func(msg string, args ...any)) *notifier {
	if socket == "" {
		return nil
	}
	n := &notifier{out: make(chan string, 64)}
	addr := &net.UnixAddr{Name: socket, Net: "unixgram"}
	if strings.HasPrefix(socket, "@") {
		addr.Name = "\x00" + socket[1:]
	}
	go func() {
		var conn *net.UnixConn
		for {
			select {
			case <-ctx.Done():
				if conn != nil {
					conn.Close()
				}
				return
			case msg := <-n.out:
				if conn == nil {
					c, err := net.DialUnix("unixgram", nil, addr)
					if err != nil {
						logf("systemd notify: cannot reach NOTIFY_SOCKET", "socket", socket, "err", err)
						continue
					}
					conn = c
				}
				conn.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := conn.Write([]byte(msg)); err != nil {
					logf("systemd notify failed", "err", err)
					conn.Close()
					conn = nil
				}
			}
		}
	}()
	return n
}

// send queues a message; when the queue is full (systemd is not reading)
// it is dropped rather than stall the caller.
func (n *notifier) send(msg string) {
	if n == nil {
		return
	}
	select {
	case n.out <- msg:
	default:
	}
}

// WatchdogInterval is how often to send WATCHDOG=1: half the WATCHDOG_USEC
// systemd set in env, when it is meant for process pid (WATCHDOG_PID); 0
// when systemd wants no watchdog.
func WatchdogInterval(env []string, pid int) time.Duration {
	var usec, wpid string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "WATCHDOG_USEC="); ok {
			usec = v
		} else if v, ok := strings.CutPrefix(kv, "WATCHDOG_PID="); ok {
			wpid = v
		}
	}
	us, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	if wpid != "" && wpid != strconv.Itoa(pid) {
		return 0
	}
	return time.Duration(us) * time.Microsecond / 2
}

// statusChanged schedules a STATUS update once the number of vassals with
// a process changed; updates are coalesced so a cold start of a thousand
// vassals sends a handful, not a thousand.
func (e *Emperor) statusChanged() {
	if e.notify == nil || !e.readySent || e.ragnarok || e.statusPending || e.live == e.statusSent {
		return
	}
	e.statusPending = true
	e.afterTick(200*time.Millisecond, statusTick)
}

// sendStatus sends the current STATUS line.
func (e *Emperor) sendStatus() {
	e.statusPending = false
	e.statusSent = e.live
	e.notify.send(statusLine(e.live))
}

// statusLine is the systemd STATUS text.
func statusLine(n int) string {
	return "STATUS=The Emperor is governing " + strconv.Itoa(n) + " vassals\n"
}
