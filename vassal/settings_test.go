package vassal

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/capabilities"
	"github.com/emperor-dev/emperor/config"
)

func TestParseSettings_NewOptions(t *testing.T) {
	s, warned, err := parse(t, `[uwsgi]
shared-socket = 127.0.0.1:9000
shared-socket = /tmp/s.sock
http-socket = =1
uwsgi-socket = =0
socket = fd://5
worker-exec = ./app
chmod-socket =
chown-socket = www:www
reuse-port = true
vacuum = true
pidfile = /run/a.pid
pidfile2 = /run/b.pid
ready-timeout = 0
heartbeat = 5
idle = 30
die-on-idle = true
vassal-sos = 3
vassal-sos-backlog = 10
max-worker-lifetime = 3600
reload-on-rss = 256
die-on-term = false
master-fifo = /tmp/f0
master-fifo = /tmp/f1
stats = 127.0.0.1:1717
stats-http = true
attach-daemon = memcached -p 11211
smart-attach-daemon = /tmp/pg.pid pg_ctl start
uid = www
gid = www
cap = net_bind_service,CAP_SETUID
logto = /var/log/app.log
procname-prefix = app-
skip-zero = true
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(warned) != 0 {
		t.Errorf("warned about %q", warned)
	}
	want := []SocketSpec{{HTTPSocket, "/tmp/s.sock", "", 4, 2}, {RawSocket, "127.0.0.1:9000", "", 5, 1}, {RawSocket, "fd://5", "", 6, 0}}
	for i, w := range want {
		if g := s.Sockets[i]; g.Kind != w.Kind || g.Addr != w.Addr || g.Shared != w.Shared {
			t.Errorf("socket %d = %+v, want %+v", i, g, w)
		}
	}
	if s.ChmodSocket != 0o666 || s.ChownSocket != "www:www" || !s.ReusePort || !s.Vacuum || s.Pidfile != "/run/a.pid" || s.Pidfile2 != "/run/b.pid" {
		t.Errorf("socket settings %+v", s)
	}
	if s.ReadyTimeout != 0 || s.Heartbeat != 5*time.Second || s.Idle != 30*time.Second || !s.DieOnIdle || s.SOS != 3*time.Second || s.SOSBacklog != 10 {
		t.Errorf("protocol settings %+v", s)
	}
	if s.MaxWorkerLifetime != time.Hour || s.ReloadOnRSS != 256<<20 || s.DieOnTerm {
		t.Errorf("supervision settings %+v", s)
	}
	if strings.Join(s.MasterFifo, ",") != "/tmp/f0,/tmp/f1" || s.Stats != "127.0.0.1:1717" || !s.StatsHTTP {
		t.Errorf("fifo/stats settings %+v", s)
	}
	if len(s.Daemons) != 2 || s.Daemons[0] != (DaemonSpec{Command: "memcached -p 11211"}) || s.Daemons[1] != (DaemonSpec{Command: "pg_ctl start", Pidfile: "/tmp/pg.pid"}) {
		t.Errorf("daemons %+v", s.Daemons)
	}
	if s.UID != "www" || s.GID != "www" || len(s.Caps) != 2 || s.Caps[0] != unix.CAP_NET_BIND_SERVICE || s.Caps[1] != unix.CAP_SETUID {
		t.Errorf("privileges %+v", s)
	}
	if s.LogTo != "/var/log/app.log" || s.ProcnamePrefix != "app-" || !s.SkipZero {
		t.Errorf("misc %+v", s)
	}
}

func TestParseSettings_NewDefaults(t *testing.T) {
	s, _, err := parse(t, "[uwsgi]\nworker-exec = x\nchmod-socket = 660\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.ReadyTimeout != DefaultReadyTimeout || !s.DieOnTerm || s.Vacuum || s.ChmodSocket != 0o660 {
		t.Errorf("defaults %+v", s)
	}
}

func TestParseSettings_NewErrors(t *testing.T) {
	tests := []struct{ name, text, key string }{
		{"bad shared ref", "[uwsgi]\nworker-exec = x\nshared-socket = :1\nsocket = =1\n", "socket"},
		{"no shared socket", "[uwsgi]\nworker-exec = x\nhttp-socket = =0\n", "http-socket"},
		{"bad chmod", "[uwsgi]\nworker-exec = x\nchmod-socket = 999\n", "chmod-socket"},
		{"bad cap", "[uwsgi]\nworker-exec = x\ncap = fly\n", "cap"},
		{"bad smart daemon", "[uwsgi]\nworker-exec = x\nsmart-attach-daemon = /tmp/p.pid\n", "smart-attach-daemon"},
		{"negative ready-timeout", "[uwsgi]\nworker-exec = x\nready-timeout = -1\n", "ready-timeout"},
		{"bad die-on-term", "[uwsgi]\nworker-exec = x\ndie-on-term = perhaps\n", "die-on-term"},
		{"too many fifos", "[uwsgi]\nworker-exec = x\n" + strings.Repeat("master-fifo = /tmp/f\n", 11), "master-fifo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parse(t, tt.text)
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Key != tt.key {
				t.Fatalf("error %v, want a *config.Error for %s", err, tt.key)
			}
		})
	}
}

// TestParseSettings_CapNumbers: cap takes numbers as emperor-cap does, and
// refuses a capability the running kernel does not have, saying why.
func TestParseSettings_CapNumbers(t *testing.T) {
	s, _, err := parse(t, "[uwsgi]\nworker-exec = x\ncap = 10\ncap = setuid 12\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Caps) != 3 || s.Caps[0] != unix.CAP_NET_BIND_SERVICE || s.Caps[1] != unix.CAP_SETUID || s.Caps[2] != unix.CAP_NET_ADMIN {
		t.Errorf("cap = 10, cap = setuid 12: caps %v, want [10 7 12]", s.Caps)
	}
	above := strconv.Itoa(capabilities.LastCap() + 1)
	_, _, err = parse(t, "[uwsgi]\nworker-exec = x\ncap = net_raw,"+above+"\n")
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "cap" || ce.Line != 3 || !strings.Contains(err.Error(), "capability "+above) || !strings.Contains(err.Error(), "cap_last_cap") {
		t.Errorf("cap = %s: error %v, want one for cap at line 3 naming %s and the kernel's last capability", above, err, above)
	}
}

func TestPlainCommand(t *testing.T) {
	for cmd, want := range map[string]string{
		"./app --port 80":    "./app,--port,80",
		"/usr/bin/x a=b":     "/usr/bin/x,a=b",
		"app 'quoted'":       "",
		"app $HOME":          "",
		"A=1 app":            "",
		"app > log":          "",
		"exec app":           "",
		"app; other":         "",
		"app *.txt":          "",
		"  spaced   words  ": "spaced,words",
	} {
		if got := strings.Join(plainCommand(cmd), ","); got != want {
			t.Errorf("plainCommand(%q) = %q, want %q", cmd, got, want)
		}
	}
}
