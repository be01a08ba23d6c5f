package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// RabbitMQAddr is where the machine's RabbitMQ listens (guest/guest).
const RabbitMQAddr = "127.0.0.1:5672"

// RabbitMQ requires RabbitMQ on RabbitMQAddr and returns the amqp://
// argument for it (the part after the scheme).
func RabbitMQ(t testing.TB) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", RabbitMQAddr, 2*time.Second)
	if err != nil {
		Missing(t, "RabbitMQ on "+RabbitMQAddr+" (guest/guest): "+err.Error())
	}
	c.Close()
	return "guest:guest@" + RabbitMQAddr + "/"
}

// Python3 requires Debian's python3 (/usr/bin/python3, where apt installs
// python3-pika and python3-zmq; a python3 earlier in PATH may be another
// installation) with the named modules, and returns its path.
func Python3(t testing.TB, modules ...string) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		Missing(t, "Debian's python3: "+err.Error())
	}
	for _, m := range modules {
		if out, err := exec.Command(py, "-c", "import "+m).CombinedOutput(); err != nil {
			Missing(t, fmt.Sprintf("python3 module %s (apt-get install python3-%s): %v: %s", m, m, err, out))
		}
	}
	return py
}

// RestartRabbitMQ stops the RabbitMQ application (the Erlang node stays),
// calls during while it is down, then starts it again and waits until it
// accepts AMQP connections. It needs rabbitmqctl and the rights to use it
// (root). The broker is running again when it returns, even on failure.
func RestartRabbitMQ(t testing.TB, during func()) {
	t.Helper()
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		Missing(t, "rabbitmqctl: "+err.Error())
	}
	if os.Getuid() != 0 {
		Missing(t, "restarting RabbitMQ needs root")
	}
	start := func() {
		if out, err := exec.Command(ctl, "start_app").CombinedOutput(); err != nil {
			t.Errorf("rabbitmqctl start_app: %v: %s", err, out)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			if out, err := exec.Command(ctl, "await_startup").CombinedOutput(); err == nil {
				c, derr := net.DialTimeout("tcp", RabbitMQAddr, 2*time.Second)
				if derr == nil {
					c.Close()
					return
				}
			} else if time.Now().After(deadline) {
				t.Errorf("RabbitMQ not back within 60 s: %v: %s", err, out)
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("RabbitMQ does not accept connections 60 s after start_app")
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if out, err := exec.Command(ctl, "stop_app").CombinedOutput(); err != nil {
		start()
		t.Fatalf("rabbitmqctl stop_app: %v: %s", err, out)
	}
	defer start()
	during()
}
