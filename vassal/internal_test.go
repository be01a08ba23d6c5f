package vassal

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/protocol"
)

func TestNextBackoff(t *testing.T) {
	tests := []struct {
		prev, lived, want time.Duration
	}{
		{0, 0, 100 * time.Millisecond},
		{100 * time.Millisecond, time.Second, 200 * time.Millisecond},
		{200 * time.Millisecond, 0, 400 * time.Millisecond},
		{3200 * time.Millisecond, time.Second, 5 * time.Second},
		{5 * time.Second, time.Second, 5 * time.Second},
		{5 * time.Second, 9999 * time.Millisecond, 5 * time.Second},
		{5 * time.Second, 10 * time.Second, 100 * time.Millisecond},
		{time.Second, time.Hour, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := nextBackoff(tt.prev, tt.lived); got != tt.want {
			t.Errorf("nextBackoff(%v, %v) = %v, want %v", tt.prev, tt.lived, got, tt.want)
		}
	}
}

func TestShellCommand(t *testing.T) {
	tests := []struct{ in, want string }{
		{"./server", "exec ./server"},
		{"  python3 app.py --port 1 ", "exec python3 app.py --port 1"},
		{"prog >/tmp/log 2>&1", "exec prog >/tmp/log 2>&1"},
		{"prog &>/tmp/log", "prog &>/tmp/log"}, // dash: runs prog in the background
		{"prog &", "prog &"},
		{`python3 -c "a; b"`, `python3 -c "a; b"`}, // conservative: quotes are not parsed
		{"prog > /tmp/log", "exec prog > /tmp/log"},
		{"exec ./server", "exec ./server"},
		{"cd app && ./server", "cd app && ./server"},
		{"a; b", "a; b"},
		{"a | b", "a | b"},
		{"FOO=1 ./server", "FOO=1 ./server"},
		{"(./server)", "(./server)"},
		{"{ ./server; }", "{ ./server; }"},
		{"if true; then x; fi", "if true; then x; fi"},
		{"a\nb", "a\nb"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := shellCommand(tt.in); got != tt.want {
			t.Errorf("shellCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNameOf(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--ini", "/etc/vassals/app.ini"}, "app.ini"},
		{[]string{"--ini=/etc/vassals/app.ini"}, "app.ini"},
		{[]string{"--set", "a=b", "--yaml", "emperor://shop.yml"}, "shop.yml"},
		{[]string{"--inherit", "base.ini", "--xml", "x/y.xml"}, "y.xml"},
		{[]string{"--set", "worker-exec=x"}, "vassal"},
		{[]string{"--ini"}, "vassal"},
	}
	for _, tt := range tests {
		if got := NameOf(tt.args); got != tt.want {
			t.Errorf("NameOf(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

func parse(t *testing.T, text string) (Settings, []string, error) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "app.ini")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := (&config.Loader{}).Args([]string{"--ini", p})
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	s, err := ParseSettings(c, func(o config.Option) { warned = append(warned, o.Key) })
	return s, warned, err
}

func TestParseSettings(t *testing.T) {
	s, warned, err := parse(t, `[uwsgi]
master = true
http-socket = 127.0.0.1:9000
socket = /tmp/x.sock
http-socket = :9001
worker-exec = ./app
processes = 3
env = A=1
env = B=x=y
chdir = /srv
worker-reload-mercy = 7
listen = 50
custom = 1
custom = 2
`)
	if err != nil {
		t.Fatal(err)
	}
	wantSockets := []SocketSpec{{HTTPSocket, "127.0.0.1:9000", "", 3, 0}, {RawSocket, "/tmp/x.sock", "", 4, 0}, {HTTPSocket, ":9001", "", 5, 0}}
	if len(s.Sockets) != len(wantSockets) {
		t.Fatalf("sockets %+v", s.Sockets)
	}
	for i, w := range wantSockets {
		g := s.Sockets[i]
		if g.Kind != w.Kind || g.Addr != w.Addr || g.Line != w.Line || !strings.HasSuffix(g.File, "app.ini") {
			t.Errorf("socket %d = %+v, want %+v", i, g, w)
		}
	}
	if s.Exec != "./app" || s.Processes != 3 || s.Chdir != "/srv" || s.Mercy != 7*time.Second || s.Listen != 50 {
		t.Errorf("settings %+v", s)
	}
	if strings.Join(s.Env, ",") != "A=1,B=x=y" {
		t.Errorf("env %q", s.Env)
	}
	if strings.Join(warned, ",") != "custom" {
		t.Errorf("warned about %q, want custom once", warned)
	}
}

func TestParseSettings_Defaults(t *testing.T) {
	s, _, err := parse(t, "[uwsgi]\nworker-exec = x\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.Processes != DefaultProcesses || s.Mercy != DefaultMercy || s.Listen != DefaultListen || len(s.Sockets) != 0 {
		t.Errorf("defaults %+v", s)
	}
}

func TestParseSettings_Errors(t *testing.T) {
	tests := []struct {
		name, text, where, key string
	}{
		{"strict unknown", "[uwsgi]\nstrict = true\nworker-exec = x\nbogus = 1\n", "app.ini:4", "bogus"},
		{"no worker-exec", "[uwsgi]\nhttp-socket = :1\n", "", "worker-exec"},
		{"bad processes", "[uwsgi]\nworker-exec = x\nprocesses = many\n", "app.ini:3", "processes"},
		{"zero workers", "[uwsgi]\nworker-exec = x\nworkers = 0\n", "app.ini:3", "workers"},
		{"bad env", "[uwsgi]\nworker-exec = x\nenv = NOVALUE\n", "app.ini:3", "env"},
		{"bad mercy", "[uwsgi]\nworker-exec = x\nworker-reload-mercy = -1\n", "app.ini:3", "worker-reload-mercy"},
		{"bad listen", "[uwsgi]\nworker-exec = x\nlisten = 0\n", "app.ini:3", "listen"},
		{"bad strict", "[uwsgi]\nworker-exec = x\nstrict = maybe\n", "app.ini:3", "strict"},
		{"empty socket", "[uwsgi]\nworker-exec = x\nsocket =\n", "app.ini:3", "socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parse(t, tt.text)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a *config.Error", err)
			}
			if ce.Key != tt.key || !strings.Contains(err.Error(), tt.where) {
				t.Errorf("error %q (key %q), want key %q at %q", err, ce.Key, tt.key, tt.where)
			}
		})
	}
}

func TestIsUnixAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:80": false, ":80": false, "[::1]:80": false, "localhost:80": false,
		"/tmp/a.sock": true, "./a.sock": true, "a.sock": true, "@abstract": true, "/tmp/a:b": true,
	} {
		if got := isUnixAddr(addr); got != want {
			t.Errorf("isUnixAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestBindSocket(t *testing.T) {
	l, err := bindSocket(SocketSpec{Kind: HTTPSocket, Addr: "127.0.0.1:0"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close(true)
	if !strings.HasPrefix(l.dial, "127.0.0.1:") || strings.HasSuffix(l.dial, ":0") {
		t.Errorf("dial address %q", l.dial)
	}
	c, err := net.Dial("tcp", l.dial)
	if err != nil {
		t.Fatalf("the socket does not listen: %v", err)
	}
	c.Close()

	// A unix socket file is created, a stale one replaced, and removed on close.
	path := filepath.Join(t.TempDir(), "s.sock")
	u, err := bindSocket(SocketSpec{Kind: RawSocket, Addr: path}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bindSocket(SocketSpec{Kind: RawSocket, Addr: path}, 10); err == nil {
		t.Error("bound a unix socket another listener is using")
	}
	u.file.Close() // leaves the file behind, like a crashed vassal
	u2, err := bindSocket(SocketSpec{Kind: RawSocket, Addr: path}, 10)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if err := u2.close(true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left behind: %v", err)
	}
}

func TestProcNetAddr(t *testing.T) {
	// 127.0.0.1:8080 as the little-endian kernels print it.
	a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	if got := procNetAddr(a); got != "0100007F:1F90" {
		t.Errorf("procNetAddr(%v) = %q", a, got)
	}
	a6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 1}
	if got := procNetAddr(a6); got != "00000000000000000000000001000000:0001" {
		t.Errorf("procNetAddr(%v) = %q", a6, got)
	}
}

func TestServerInode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Not accepted yet: no socket object, inode 0.
	if ino, err := serverInode(c.(*net.TCPConn)); err != nil || ino != 0 {
		t.Fatalf("before accept: inode %d, %v", ino, err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ino, err := serverInode(c.(*net.TCPConn))
	if err != nil || ino == 0 {
		t.Fatalf("after accept: inode %d, %v", ino, err)
	}
	if owner := socketOwner(ino, []int{os.Getpid()}); owner != os.Getpid() {
		t.Errorf("socketOwner = %d, want this process %d", owner, os.Getpid())
	}
	if owner := socketOwner(ino, []int{1 << 22}); owner != 0 {
		t.Errorf("socketOwner with no matching worker = %d, want 0", owner)
	}
}

func TestEmperorClient_Frames(t *testing.T) {
	emperorEnd, vassalEnd := socketpair(t)
	env := map[string]string{protocol.EnvFD: "-1"}
	if _, err := openEmperor(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil {
		t.Error("accepted fd -1")
	}

	ctlEmperor, ctlVassal := socketpair(t)
	c := &emperorClient{ctl: ctlVassal, cfg: vassalEnd}
	frame := func(s string) []byte {
		b, err := protocol.AppendFrame(nil, []byte(s), false)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Two frames queued: the newest wins.
	emperorEnd.Write(append(frame("old"), frame("new")...))
	text, err := c.initialConfig()
	if err != nil || string(text) != "new" {
		t.Fatalf("initialConfig = %q, %v", text, err)
	}
	// On reload: a stale pushed frame, then the answer to byte 2.
	emperorEnd.Write(frame("pushed"))
	go func() {
		var b [1]byte
		if _, err := ctlEmperor.Read(b[:]); err == nil && b[0] == byte(protocol.ConfigRequest) {
			emperorEnd.Write(frame("answer"))
		}
	}()
	text, err = c.reloadConfig()
	if err != nil || string(text) != "answer" {
		t.Fatalf("reloadConfig = %q, %v", text, err)
	}
}

// socketpair returns two connected, pollable (non-blocking) files.
func socketpair(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "emperor"), os.NewFile(uintptr(fds[1]), "vassal")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestExamples checks that every example vassal config parses, with the
// ports and paths the examples document.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/vassals/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"hello-go.ini":           "127.0.0.1:9101",
		"hello-py.ini":           "127.0.0.1:9102",
		"hello-placeholders.ini": "127.0.0.1:9103",
		"app.skel":               "/tmp/app.sock",
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			s, err := loadSettings([]string{"--ini", f}, nil, false, func(string) (string, bool) { return "tester", true }, nil, slogDiscard())
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Sockets) != 1 || s.Sockets[0].Addr != want[name] {
				t.Errorf("sockets %+v, want %s", s.Sockets, want[name])
			}
			if strings.Contains(s.Exec, "bin/hello") {
				if got, err := filepath.Abs(strings.Fields(s.Exec)[0]); err != nil || got != filepath.Join(repo, "bin", "hello") {
					t.Errorf("worker-exec %q does not name the Makefile's bin/hello", s.Exec)
				}
			}
		})
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestLoadSettings_Chdir(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.ini")
	if err := os.WriteFile(p, []byte("[uwsgi]\nworker-exec = x\nchdir = "+filepath.Join(dir, "missing")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadSettings([]string{"--ini", p}, nil, false, nil, nil, slogDiscard())
	if err == nil || !strings.Contains(err.Error(), "app.ini:3: chdir: cannot use") || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("error %v, want one naming app.ini:3 and the missing directory", err)
	}
}

func TestAwaitExit(t *testing.T) {
	for _, tt := range []struct {
		script string
		want   string
	}{
		{"exit 3", "exit status 3"},
		{"exit 0", "exit status 0"},
		{"kill -9 $$", "signal SIGKILL"},
		{"kill -TERM $$", "signal SIGTERM"},
	} {
		cmd := exec.Command("/bin/sh", "-c", tt.script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exit, err := awaitExit(cmd.Process.Pid)
		cmd.Wait()
		if err != nil || exit.String() != tt.want {
			t.Errorf("%q: %v, %v; want %s", tt.script, exit, err, tt.want)
		}
	}
}
