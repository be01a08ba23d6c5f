package emperortest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// Get returns the status code and the status line plus body of GET url.
func Get(url string) (int, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Status + "\n" + string(b), err
}

// Body returns the body of GET url, whatever its status.
func Body(url string) (string, error) {
	_, text, err := Get(url)
	_, body, _ := strings.Cut(text, "\n")
	return body, err
}

// WaitServing asks url until its body satisfies ok, and returns the body.
// Nothing tells a test that a vassal's workers serve, so this is the one
// wait that asks again, every 20 ms, up to testkit.Deadline.
func WaitServing(t testing.TB, url string, ok func(body string) bool) string {
	t.Helper()
	var body string
	var err error
	if !poll(func() bool { body, err = Body(url); return err == nil && ok(body) }) {
		t.Fatalf("%s never served as expected within %s: last body %q, err %v", url, testkit.Deadline, body, err)
	}
	return body
}

// WaitAnswer waits until url answers 200 with want in its status line or
// body (UWSGIConfig's vassals answer in the status line).
func WaitAnswer(t testing.TB, url, want string) {
	t.Helper()
	var code int
	var text string
	var err error
	if !poll(func() bool {
		code, text, err = Get(url)
		return err == nil && code == 200 && strings.Contains(text, want)
	}) {
		t.Fatalf("%s never answered 200 %q within %s: last %d %q, err %v", url, want, testkit.Deadline, code, text, err)
	}
}

// WaitDown waits until nothing answers on url.
func WaitDown(t testing.TB, url string) {
	t.Helper()
	if !poll(func() bool { _, _, err := Get(url); return err != nil }) {
		t.Fatalf("%s still answers after %s", url, testkit.Deadline)
	}
}

func poll(cond func() bool) bool {
	deadline := time.Now().Add(testkit.Deadline)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// UWSGIConfig is a real uWSGI vassal's config answering GET / on port with
// 200 and the status text "served by NAME" from uWSGI's internal router (no
// plugin, no file to read, so it runs as any user).
func UWSGIConfig(port int, name string) string {
	return fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nmaster = true\nprocesses = 1\nroute-run = return:200 served by %s\n", port, name)
}
