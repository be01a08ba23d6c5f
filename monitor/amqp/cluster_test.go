package amqp_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/internal/testkit"
)

// TestAMQP_Cluster runs three Emperor processes, as an operator would on
// three hosts, bound to one exchange: one published config runs on all
// three (each vassal takes its port from the Emperor's
// UWSGI_VASSAL_HTTP_SOCKET, so one config serves everywhere); a name the
// hosts' emperor-push-name-pattern refuses runs nowhere.
func TestAMQP_Cluster(t *testing.T) {
	b := newBroker(t)
	uwsgi := testenv.UWSGI(t)
	bin := filepath.Join(t.TempDir(), "emperor")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go") // the toolchain running this test
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	if out, err := exec.Command(gobin, "build", "-o", bin, "../../cmd/emperor").CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("go build of the emperor: %v: %s", err, out))
	}
	type host struct {
		cmd  *exec.Cmd
		logs *testkit.Log
		url  string
	}
	var hosts []host
	for i := range 3 {
		port := testenv.FreePort(t)
		h := host{logs: &testkit.Log{}, url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
		h.cmd = exec.Command(bin,
			"--emperor", "amqp://"+b.arg,
			"--emperor-amqp-exchange", b.exchange,
			"--emperor-state-dir", filepath.Join(t.TempDir(), fmt.Sprint("state", i)),
			"--emperor-push-name-pattern", `shop-.*\.ini`,
			"--binary-path", uwsgi)
		h.cmd.Env = append(os.Environ(), fmt.Sprintf("UWSGI_VASSAL_HTTP_SOCKET=127.0.0.1:%d", port))
		h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
		if err := h.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			h.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- h.cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				h.cmd.Process.Kill()
				t.Errorf("Emperor %d ignored SIGTERM", i)
			}
		})
		hosts = append(hosts, h)
	}
	for _, h := range hosts {
		h.logs.WaitFor(t, "consuming")
	}
	b.publish("shop-front.ini", []byte("[uwsgi]\nmaster = true\nprocesses = 1\nroute-run = return:200 served by the cluster\n"))
	for _, h := range hosts {
		emperortest.WaitAnswer(t, h.url, "served by the cluster")
	}
	b.publish("blog.ini", []byte("[uwsgi]\nroute-run = return:200 blog\n"))
	for _, h := range hosts {
		h.logs.WaitFor(t, "does not match emperor-push-name-pattern")
	}
	b.publish("shop-front.ini", nil)
	for _, h := range hosts {
		emperortest.WaitDown(t, h.url)
	}
}
