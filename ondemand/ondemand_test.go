package ondemand

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/internal/testenv"
)

func TestNameEndsAtAControlByteOnly(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8000\n":        "127.0.0.1:8000",
		"/run/app.sock\r\nrest":   "/run/app.sock",
		"/srv/café/app.sock\n":    "/srv/café/app.sock", // uWSGI cut it at the é (B37)
		"@app\x7fjunk":            "@app",
		"":                        "",
		"\n/run/app.sock":         "",
		"/run/a b.sock\x00hidden": "/run/a b.sock",
	} {
		if got := Name([]byte(in)); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFromExtension(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "app.ini")
	if got, err := FromExtension(config, ".socket"); got != "" || err != nil {
		t.Errorf("no socket file: %q, %v; want not on-demand", got, err)
	}
	os.WriteFile(config+".socket", []byte("127.0.0.1:8123\n"), 0o644)
	if got, err := FromExtension(config, ".socket"); got != "127.0.0.1:8123" || err != nil {
		t.Errorf("socket file: %q, %v", got, err)
	}
	os.WriteFile(config+".socket", nil, 0o644)
	if got, err := FromExtension(config, ".socket"); got != "" || err != nil {
		t.Errorf("empty socket file: %q, %v; want not on-demand", got, err)
	}
}

func TestFromDirectory(t *testing.T) {
	for config, want := range map[string]string{
		"/etc/vassals/app.ini": "/var/tmp/app.socket",
		"/etc/vassals/a.b.xml": "/var/tmp/a.b.socket",
		"/etc/vassals/noext":   "/var/tmp/noext.socket",
		"/etc/vassals/.hidden": "/var/tmp/.hidden.socket",
		"relative/shop.ini":    "/var/tmp/shop.socket",
	} {
		if got := FromDirectory("/var/tmp", config); got != want {
			t.Errorf("FromDirectory(%q) = %q, want %q", config, got, want)
		}
	}
}

// The config's path reaches the command as its argument: a file name that
// is shell code stays a name (uWSGI spliced it into the command, B38).
func TestFromExecPassesThePathAsAnArgument(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	config := filepath.Join(dir, `x"; touch `+marker+`; echo "$(touch `+marker+`).ini`)
	got, err := FromExec(context.Background(), `printf '%s.sock\n'`, config, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got != config+".sock" {
		t.Errorf("name %q, want the path with .sock: %q", got, config+".sock")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the config's name ran as shell code")
	}
	if got, err := FromExec(context.Background(), "true", config, 10*time.Second); got != "" || err != nil {
		t.Errorf("no output: %q, %v; want not on-demand", got, err)
	}
	if _, err := FromExec(context.Background(), "echo broken >&2; exit 3", config, 10*time.Second); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("a failing command: %v; want an error with its stderr", err)
	}
}

// A command that never answers is killed: the caller is not held.
func TestFromExecTimesOut(t *testing.T) {
	_, err := FromExec(context.Background(), "sleep 600; echo", "/etc/vassals/app.ini", 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("a command that never ends: %v; want a timeout error", err)
	}
}

// listenAndDial binds name, connects once before anything accepts, and
// accepts that connection from the listener: a connection that arrives
// while no vassal runs waits for one.
func listenAndDial(t *testing.T, name, network string, owner *Owner) *Listener {
	t.Helper()
	l, err := Listen(name, owner, 0)
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr()
	if network == "unix" {
		addr = name
	}
	c, err := net.Dial(network, addr)
	if err != nil {
		l.Close()
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	nfd, _, err := unix.Accept(l.Fd())
	if err != nil {
		l.Close()
		t.Fatalf("accept on %s: %v", name, err)
	}
	unix.Close(nfd)
	return l
}

func TestListenTCP(t *testing.T) {
	for _, name := range []string{"127.0.0.1:0", "[::1]:0"} {
		l := listenAndDial(t, name, "tcp", nil)
		if !strings.Contains(l.Addr(), ":") || strings.HasSuffix(l.Addr(), ":0") {
			t.Errorf("%s: bound to %q", name, l.Addr())
		}
		l.Close()
	}
	for _, name := range []string{"localhost:8000", "127.0.0.1:http", "127.0.0.1:70000", ":"} {
		if l, err := Listen(name, nil, 0); err == nil {
			l.Close()
			t.Errorf("Listen(%q) bound; want an error", name)
		}
	}
}

func TestListenUnixFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	l := listenAndDial(t, path, "unix", &Owner{UID: os.Getuid(), GID: os.Getgid()})
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket file %v, %v; want a socket of mode 0666", fi, err)
	}
	// A second Listen replaces the stale socket, and the first Close
	// leaves the new one alone.
	l2, err := Listen(path, nil, 0)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("closing the replaced listener removed its successor's file: %v", err)
	}
	l2.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Close left the socket file: %v", err)
	}

	regular := filepath.Join(dir, "data.txt")
	os.WriteFile(regular, []byte("keep me"), 0o644)
	if l, err := Listen(regular, nil, 0); err == nil {
		l.Close()
		t.Errorf("bound over a regular file")
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep me" {
		t.Errorf("the regular file in the way was changed: %q", b)
	}
	long := filepath.Join(dir, strings.Repeat("x", 120)+".sock")
	if l, err := Listen(long, nil, 0); err == nil || !strings.Contains(err.Error(), "at most") {
		if l != nil {
			l.Close()
		}
		t.Errorf("a path too long for sun_path: %v; want an error, not a truncation", err)
	}
}

func TestListenUnixOwner(t *testing.T) {
	testenv.Root(t) // chown to another user
	path := filepath.Join(t.TempDir(), "tenant.sock")
	l, err := Listen(path, &Owner{UID: 65534, GID: 65534}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("socket owned by %d:%d (%v), want 65534:65534", st.Uid, st.Gid, err)
	}
}

func TestListenAbstract(t *testing.T) {
	name := "@emperor-ondemand-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	l := listenAndDial(t, name, "unix", nil)
	l.Close()
}
