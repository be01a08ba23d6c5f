package zmq_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
)

// TestZMQ_RealUWSGI pushes a real uWSGI vassal with python3-zmq; it serves
// (its config came over the config fd), a second touch reloads it, destroy
// stops it.
func TestZMQ_RealUWSGI(t *testing.T) {
	p := newPusher(t)
	port := testenv.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	e := emperortest.Start(t, emperortest.Setup{Monitors: []string{"zmq://" + p.endpoint}, Binary: testenv.UWSGI(t)})

	p.push(nil, "touch", "zmq.ini", emperortest.UWSGIConfig(port, "v1"))
	run := e.WaitState("zmq.ini", emperor.Running)
	emperortest.WaitAnswer(t, url, "served by v1")

	p.push(nil, "touch", "zmq.ini", emperortest.UWSGIConfig(port, "v2"))
	e.WaitNote("reload of zmq.ini", func(n emperor.Note) bool {
		return n.Key.Name == "zmq.ini" && strings.HasPrefix(n.Reason, "reload")
	})
	emperortest.WaitAnswer(t, url, "served by v2")
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", run.Pid)); err != nil {
		t.Errorf("uWSGI master %d gone after a reload; it should re-exec in place", run.Pid)
	}

	p.push(nil, "destroy", "zmq.ini")
	e.WaitState("zmq.ini", emperor.Absent)
	emperortest.WaitDown(t, url)
}

// TestZMQ_TyrantOwnerFromParts runs the Emperor in tyrant mode: a touch
// with uid and gid parts runs the vassal as that user, a touch without
// them is refused with the reason.
func TestZMQ_TyrantOwnerFromParts(t *testing.T) {
	testenv.Root(t)
	p := newPusher(t)
	port := testenv.FreePort(t)
	e := emperortest.Start(t, emperortest.Setup{Monitors: []string{"zmq://" + p.endpoint}, Binary: testenv.UWSGI(t), Options: func(o *emperor.Options) {
		o.Tyrant = true
	}})
	p.push(nil, "touch", "tenant.ini", emperortest.UWSGIConfig(port, "tenant"), "65534", "65534")
	run := e.WaitState("tenant.ini", emperor.Running)
	emperortest.WaitAnswer(t, fmt.Sprintf("http://127.0.0.1:%d/", port), "served by tenant")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", run.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if (strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:")) && strings.Fields(line)[1] != "65534" {
			t.Errorf("vassal runs with %q, want 65534 from the message parts", line)
		}
	}

	p.push(nil, "touch", "anonymous.ini", emperortest.UWSGIConfig(testenv.FreePort(t), "anonymous"))
	refused := e.WaitState("anonymous.ini", emperor.Disabled)
	if !strings.Contains(refused.Reason, "no owner") {
		t.Errorf("refusal reason %q does not say the owner is missing", refused.Reason)
	}
}
