package testenv

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MongoWire is a MongoDB-wire server for tests: our small tool
// internal/mongowire, FerretDB's embeddable package with its SQLite
// backend, built on first use (its own Go module; the first build
// downloads FerretDB through the module proxy and takes minutes, later
// ones hit the cache).
type MongoWire struct {
	t    testing.TB
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
}

// StartMongoWire builds (once) and starts a MongoDB-wire server storing
// into a directory of the test's, and stops it when the test ends.
func StartMongoWire(t testing.TB) *MongoWire {
	t.Helper()
	bin, err := MongoWireBinary()
	if err != nil {
		Missing(t, "the mongowire test server (internal/mongowire, built with the go tool): "+err.Error())
	}
	m := &MongoWire{t: t, bin: bin, dir: t.TempDir(), addr: "127.0.0.1:0"}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Addr is the server's host:port; it stays the same across Stop and Start.
func (m *MongoWire) Addr() string { return m.addr }

// Start starts the server (again, on the same port and data).
func (m *MongoWire) Start() {
	m.t.Helper()
	if m.cmd != nil {
		return
	}
	cmd := exec.Command(m.bin, "-listen", m.addr, "-dir", m.dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("mongowire: %v", err)
	}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		u, err := url.Parse(strings.TrimSpace(l))
		if !ok || err != nil || u.Host == "" {
			cmd.Process.Kill()
			cmd.Wait()
			m.t.Fatalf("mongowire did not start: %q", l)
		}
		m.addr = u.Host
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		m.t.Fatal("mongowire did not start within 60 s")
	}
	m.cmd = cmd
}

// Stop stops the server: an outage as clients see it.
func (m *MongoWire) Stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		m.cmd.Process.Kill()
		<-done
	}
	m.cmd = nil
}

var mongoWireOnce struct {
	sync.Once
	path string
	err  error
}

// MongoWireBinary builds internal/mongowire into the user's cache, keyed
// by the hash of its sources, unless that build exists.
func MongoWireBinary() (string, error) {
	mongoWireOnce.Do(func() {
		mongoWireOnce.path, mongoWireOnce.err = buildMongoWire()
	})
	return mongoWireOnce.path, mongoWireOnce.err
}

func buildMongoWire() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the sources")
	}
	src := filepath.Join(filepath.Dir(self), "..", "mongowire")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "emperor-test")
	bin := filepath.Join(dir, "mongowire-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	cmd := exec.Command(goTool, "build", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build in %s: %v\n%s", src, err, out)
	}
	// Parallel test binaries may race here: the rename is atomic.
	return bin, os.Rename(tmp, bin)
}
