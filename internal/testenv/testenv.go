// Package testenv holds what the project's tests need from the machine:
// root, a real uWSGI, a free port. Off CI a missing requirement skips the
// test with the reason; under CI=true it fails it, because CI must run
// every test (a silent skip there would hide a broken set-up).
package testenv

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

// CI reports whether the tests run under CI (CI=true).
func CI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it under CI, naming what is missing.
func Missing(t testing.TB, what string) {
	t.Helper()
	if CI() {
		t.Fatal("missing under CI: " + what)
	}
	t.Skip(what)
}

// Root requires the test to run as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Getuid() != 0 {
		Missing(t, "this test needs root")
	}
}

// UWSGI returns the path of a real uWSGI with the python3 plugin, the one
// `make test` installs (apt-get install uwsgi-core uwsgi-plugin-python3).
func UWSGI(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("uwsgi")
	if err == nil {
		_, err = os.Stat("/usr/lib/uwsgi/plugins/python3_plugin.so")
	}
	if err != nil {
		Missing(t, "real uWSGI with its python3 plugin (make test installs it): "+err.Error())
	}
	return path
}

// FreePort returns a loopback TCP port that nobody listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
