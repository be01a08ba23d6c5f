package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emperor-dev/emperor/emperor"
)

// hostile are vassal names a tenant can give its config file.
var hostile = []string{
	"two\nlines.ini",
	"\x1b[31mred\x1b[0m.ini",
	"bad\xffutf8.ini",
	"tab\tbed.ini",
	"cr\rover.ini",
	"back\\nslash.ini",
	"rtl\u202eini.exe",
}

// serveStats answers every connection to a unix socket with stats.
func serveStats(t *testing.T, stats []byte) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "stats.sock")
	serveOn(t, sock, stats)
	return sock
}

// serveOn answers every connection to the unix socket addr (a path, or an
// abstract "@name") with stats.
func serveOn(t *testing.T, addr string, stats []byte) {
	t.Helper()
	ln, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write(stats)
			c.Close()
		}
	}()
}

// checkTable fails unless out is the header lines plus one line per
// vassal, free of control bytes and invalid UTF-8, and shows each name
// in wantShown.
func checkTable(t *testing.T, out string, wantShown []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3+len(wantShown) {
		t.Errorf("%d lines, want a title, a summary, a header and %d vassals:\n%s", len(lines), len(wantShown), out)
	}
	for _, b := range []byte(strings.ReplaceAll(out, "\n", "")) {
		if b < 0x20 || b == 0x7f {
			t.Errorf("raw control byte %#x in the table:\n%q", b, out)
			break
		}
	}
	if !utf8.ValidString(out) {
		t.Errorf("invalid UTF-8 in the table:\n%q", out)
	}
	for _, name := range wantShown {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, name+" ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines start with %s, want 1:\n%s", n, name, out)
		}
	}
}

// Names from hostile file names cannot forge lines, columns or colours in
// an operator's terminal.
func TestStatus_HostileNames(t *testing.T) {
	s := emperor.Stats{Pid: 1, Emperor: []string{"dir:///etc/vassals"}}
	for _, n := range hostile {
		s.Vassals = append(s.Vassals, emperor.VassalStats{ID: n, Monitor: "dir:///etc/vassals", State: "running",
			Reason: "config \x1b]0;owned\x07changed\n"})
	}
	s.Vassals = append(s.Vassals, emperor.VassalStats{ID: "plain.ini", Monitor: "dir:///etc/vassals", State: "running"})
	raw, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"status", serveStats(t, raw)}, &out, &errb); code != 0 {
		t.Fatalf("emperor status: exit %d: %s", code, errb.String())
	}
	// encoding/json already turned the invalid byte into U+FFFD.
	checkTable(t, out.String(), []string{
		`"two\nlines.ini"`, `"\x1b[31mred\x1b[0m.ini"`, `"bad` + "\ufffd" + `utf8.ini"`, `"tab\tbed.ini"`,
		`"cr\rover.ini"`, `"back\\nslash.ini"`, `"rtl\u202eini.exe"`, "plain.ini",
	})
	if !strings.Contains(out.String(), `"config \x1b]0;owned\achanged\n"`) {
		t.Errorf("reason not shown escaped:\n%s", out.String())
	}

	// Invalid bytes that reach the table some other way are escaped too.
	out.Reset()
	printStatus(&out, &emperor.Stats{Vassals: []emperor.VassalStats{{ID: "bad\xffutf8.ini", State: "running\x1b[2J"}}}, &statusFilter{})
	checkTable(t, out.String(), []string{`"bad\xffutf8.ini"`})
	if !strings.Contains(out.String(), `"running\x1b[2J"`) {
		t.Errorf("state not shown escaped:\n%s", out.String())
	}
}
