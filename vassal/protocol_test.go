package vassal_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/protocol"
)

// notifyWorker is a worker in perl that speaks sd_notify from its own pid:
// STATUS=up at once, READY=1 when $READY is set, WATCHDOG=1 every 200 ms
// $WATCHDOG times; then it sleeps, never accepting a connection.
const notifyWorker = `use Socket;
my $p = $ENV{NOTIFY_SOCKET} or die "no NOTIFY_SOCKET\n";
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\n";
my $a = pack_sockaddr_un($p);
sub say_ { send($s, $_[0], 0, $a) or die "send: $!\n" }
say_("STATUS=up");
say_("READY=1") if $ENV{READY};
for (1 .. ($ENV{WATCHDOG} || 0)) { say_("WATCHDOG=1"); select(undef, undef, undef, 0.2) }
sleep 600;
`

// readByte reads one control byte within d; ok is false on timeout.
func readByte(t *testing.T, c net.Conn, d time.Duration) (byte, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return 0, false
		}
		t.Fatalf("reading from the vassal: %v", err)
	}
	return b[0], true
}

func TestProtocol_Heartbeat(t *testing.T) {
	needBinaries(t)
	port := testenv.FreePort(t)
	ini := writeFile(t, t.TempDir(), "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nheartbeat = 1\n", port, bins.hello))
	em := newFakeEmperor(t, false)
	startVassal(t, []string{"--ini", ini}, em.files, em.env...)
	em.started()
	em.expect(t, byte(protocol.Spawned), startDeadline)
	// Heartbeats may come before or after readiness: collect two.
	beats := 0
	deadline := time.Now().Add(startDeadline)
	for beats < 2 && time.Now().Before(deadline) {
		if b, ok := readByte(t, em.ctl, time.Until(deadline)); ok && b == byte(protocol.Heartbeat) {
			beats++
		}
	}
	if beats < 2 {
		t.Fatalf("%d heartbeats, want 2", beats)
	}
}

func TestProtocol_NotifyReadyAndWatchdog(t *testing.T) {
	needBinaries(t)
	if _, err := lookPerl(); err != nil {
		testenv.Missing(t, "perl: "+err.Error())
	}
	dir := t.TempDir()
	script := writeFile(t, dir, "notify.pl", notifyWorker)
	// The socket is never accepted on: only READY=1 can make it ready.
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf(`[uwsgi]
socket = 127.0.0.1:%d
worker-exec = perl %s
env = READY=1
env = WATCHDOG=5
heartbeat = 1
`, testenv.FreePort(t), script))
	em := newFakeEmperor(t, false)
	v := startVassal(t, []string{"--ini", ini}, em.files, em.env...)
	em.started()
	em.expect(t, byte(protocol.Spawned), startDeadline)
	// Accepting and Loyal come from READY=1; heartbeats may interleave.
	var got []byte
	deadline := time.Now().Add(startDeadline)
	for len(got) < 2 && time.Now().Before(deadline) {
		b, ok := readByte(t, em.ctl, time.Until(deadline))
		if ok && b != byte(protocol.Heartbeat) {
			got = append(got, b)
		}
	}
	if len(got) != 2 || got[0] != byte(protocol.Accepting) || got[1] != byte(protocol.Loyal) {
		t.Fatalf("bytes %v, want Accepting then Loyal", got)
	}
	waitFor(t, startDeadline, "the READY=1 log", func() bool {
		return containsAll(v.output.String(), "READY=1")
	})
	// WATCHDOG=1 stops after about a second: heartbeats stop within 2 s
	// (2 periods) of the last ping, while the worker keeps running.
	quiet := time.Now()
	deadline = time.Now().Add(startDeadline)
	for time.Since(quiet) < 3500*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatal("heartbeats never stopped after the watchdog pings stopped")
		}
		if b, ok := readByte(t, em.ctl, 3500*time.Millisecond-time.Since(quiet)); ok && b == byte(protocol.Heartbeat) {
			quiet = time.Now()
		}
	}
}

func TestProtocol_DieOnIdle(t *testing.T) {
	needBinaries(t)
	conf := func(port int) string {
		return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\nidle = 1\ndie-on-idle = true\n", port, bins.hello)
	}
	t.Run("emperor", func(t *testing.T) {
		port := testenv.FreePort(t)
		ini := writeFile(t, t.TempDir(), "app.ini", conf(port))
		em := newFakeEmperor(t, false)
		v := startVassal(t, []string{"--ini", ini}, em.files, em.env...)
		em.started()
		em.expect(t, byte(protocol.Spawned), startDeadline)
		em.expect(t, byte(protocol.Accepting), startDeadline)
		em.expect(t, byte(protocol.Loyal), startDeadline)
		h := waitGet(t, port, startDeadline, nil)
		em.expect(t, byte(protocol.Voluntary), startDeadline)
		waitFor(t, exitDeadline, "the worker to stop", func() bool { return !alive(h.pid) })
		select {
		case <-v.exited:
			t.Fatal("the vassal exited before the Emperor's stop byte")
		default:
		}
		em.send(t, byte(protocol.Stop))
		if code := v.wait(t, exitDeadline); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
	})
	t.Run("standalone", func(t *testing.T) {
		port := testenv.FreePort(t)
		ini := writeFile(t, t.TempDir(), "app.ini", conf(port))
		v := startVassal(t, []string{"--ini", ini}, nil)
		waitGet(t, port, startDeadline, nil)
		if code := v.wait(t, exitDeadline); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
	})
}

func TestProtocol_VassalSOS(t *testing.T) {
	needBinaries(t)
	if _, err := lookPerl(); err != nil {
		testenv.Missing(t, "perl: "+err.Error())
	}
	for _, c := range []struct {
		opt   string
		every time.Duration // the rate limit between two Reinforcements
	}{{"vassal-sos = 2", 2 * time.Second}, {"vassal-sos-backlog = 2", 5 * time.Second}} {
		opt := c.opt
		t.Run(opt, func(t *testing.T) {
			dir := t.TempDir()
			script := writeFile(t, dir, "notify.pl", notifyWorker)
			port := testenv.FreePort(t)
			// The worker never accepts: connections stay queued.
			ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nsocket = 127.0.0.1:%d\nworker-exec = perl %s\nenv = READY=1\n%s\n", port, script, opt))
			em := newFakeEmperor(t, false)
			startVassal(t, []string{"--ini", ini}, em.files, em.env...)
			em.started()
			em.expect(t, byte(protocol.Spawned), startDeadline)
			for range 3 {
				c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			deadline := time.Now().Add(startDeadline)
			for {
				b, ok := readByte(t, em.ctl, time.Until(deadline))
				if !ok {
					t.Fatal("no Reinforcements byte")
				}
				if b == byte(protocol.Reinforcements) {
					break
				}
			}
			// Rate-limited: at most one every 2 s (vassal-sos = 2) or 5 s
			// (vassal-sos-backlog), in the vassal's one-second samples. The
			// test may read the first one late on a busy machine, so the
			// window it checks is 0.7 s shorter than the limit; without the
			// limit the next one would come a second after the first.
			window := c.every - 700*time.Millisecond
			if b, ok := readByte(t, em.ctl, window); ok {
				t.Errorf("byte %d within %v of the first Reinforcements", b, window)
			}
		})
	}
}

func TestProtocol_IdleUnixOnly(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	ini := writeFile(t, dir, "app.ini", fmt.Sprintf("[uwsgi]\nhttp-socket = %s/app.sock\nworker-exec = %s\nidle = 1\ndie-on-idle = true\n", dir, bins.hello))
	v := startVassal(t, []string{"--ini", ini}, nil)
	waitFor(t, startDeadline, "the warning that idle is off", func() bool {
		return containsAll(v.output.String(), "no TCP socket to watch")
	})
	select {
	case <-v.exited:
		t.Fatal("the vassal exited although idle cannot be watched")
	default:
	}
	if n := strings.Count(v.output.String(), "no TCP socket to watch"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
}
