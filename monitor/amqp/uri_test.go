package amqp_test

import (
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/amqp"
)

func TestParseURI(t *testing.T) {
	for _, c := range []struct {
		arg, host, user, pass, vhost string
		port                         int
	}{
		{"192.168.0.1:5672", "192.168.0.1", "guest", "guest", "/", 5672},
		{"rabbit", "rabbit", "guest", "guest", "/", 5672},
		{"deploy:s3cret@mq.example.com:5673/prod", "mq.example.com", "deploy", "s3cret", "prod", 5673},
	} {
		u, err := amqp.ParseURI(c.arg)
		if err != nil || u.Host != c.host || u.Port != c.port || u.Username != c.user || u.Password != c.pass || u.Vhost != c.vhost {
			t.Errorf("ParseURI(%q) = %+v, %v", c.arg, u, err)
		}
	}
	for _, bad := range []string{"", "/var/run/rabbit.sock", "host:notaport"} {
		if _, err := amqp.ParseURI(bad); err == nil {
			t.Errorf("ParseURI(%q) accepted", bad)
		}
	}
	m, err := amqp.New("deploy:s3cret@mq.example.com/prod", monitor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.String(), "s3cret") || !strings.Contains(m.String(), "deploy:xxxxx@") {
		t.Errorf("String() = %q, want the password redacted", m.String())
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"192.168.0.1:5672", "guest:guest@127.0.0.1:5672/", "u:p@h/vhost", "[::1]:5672"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := amqp.ParseURI(s)
		if err != nil {
			return
		}
		if u.Port <= 0 || u.Port > 65535 {
			t.Fatalf("ParseURI(%q): port %d", s, u.Port)
		}
		m, err := amqp.New(s, monitor.Options{})
		if err != nil {
			t.Fatalf("New(%q) refused what ParseURI accepted: %v", s, err)
		}
		if len(u.Password) >= 8 && strings.Contains(m.String(), u.Password) && !strings.Contains(u.Host+u.Username+u.Vhost, u.Password) {
			t.Fatalf("String() %q shows the password", m.String())
		}
	})
}
