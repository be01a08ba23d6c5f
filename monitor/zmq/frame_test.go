package zmq_test

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
)

// zmtpPeer opens a raw ZMTP 3.0 connection as a PUSH peer with the NULL
// mechanism: greeting and READY, so what follows is read as messages.
func zmtpPeer(t *testing.T, endpoint string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(endpoint, "tcp://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xff, 0x7f, 3
	copy(greeting[12:], "NULL")
	var ready []byte
	ready = append(ready, 5)
	ready = append(ready, "READY"...)
	ready = append(ready, byte(len("Socket-Type")))
	ready = append(ready, "Socket-Type"...)
	ready = binary.BigEndian.AppendUint32(ready, 4)
	ready = append(ready, "PUSH"...)
	msg := append(greeting, 0x04, byte(len(ready)))
	if _, err := c.Write(append(msg, ready...)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestZMQ_HostileFrames: a peer that declares a frame of 2^50 bytes, or
// more parts than a command has, is cut off with a log line; the Emperor
// does not allocate it (or crash), and the next pusher is served.
func TestZMQ_HostileFrames(t *testing.T) {
	p := newPusher(t)
	r := monitortest.Start(t, monitor.Open, "zmq://"+p.endpoint, monitor.Options{})
	c := zmtpPeer(t, p.endpoint)
	hdr := []byte{0x02}
	hdr = binary.BigEndian.AppendUint64(hdr, 1<<50)
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	r.WaitLog("zmq peer cut off")
	c.SetReadDeadline(time.Now().Add(testkit.Deadline))
	if _, err := c.Read(make([]byte, 4096)); err != nil {
		t.Logf("hostile peer: %v", err)
	}

	c2 := zmtpPeer(t, p.endpoint)
	var many []byte
	for range 1000 {
		many = append(many, 0x01, 1, 'x') // a part with "more" set
	}
	if _, err := c2.Write(many); err != nil {
		t.Logf("hostile peer 2: %v", err)
	}
	r.WaitLogs(2, "zmq peer cut off")

	p.push(nil, "touch", "after.ini", "[uwsgi]\n")
	r.Expect(monitor.Touch, "after.ini")
}
