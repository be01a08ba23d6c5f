package zmq

import (
	"encoding/binary"
	"net"
	"testing"
)

func newGuard(t testing.TB) *guardedConn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &guardedConn{Conn: a, greeting: zmtpGreeting}
}

// FuzzGuardScan: the guard's verdict on a stream does not depend on how
// the stream is split into reads (and it never panics).
func FuzzGuardScan(f *testing.F) {
	greeting := make([]byte, zmtpGreeting)
	ok := append(greeting, 0x04, 6, 5, 'R', 'E', 'A', 'D', 'Y', 0x01, 5, 't', 'o', 'u', 'c', 'h', 0x00, 7, 'a', 'p', 'p', '.', 'i', 'n', 'i')
	f.Add(ok, uint8(7))
	huge := append(append([]byte{}, greeting...), 0x02)
	huge = binary.BigEndian.AppendUint64(huge, 1<<50)
	f.Add(huge, uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		whole := newGuard(t).scan(stream)
		g := newGuard(t)
		var split error
		step := int(chunk)%16 + 1
		for i := 0; i < len(stream) && split == nil; i += step {
			split = g.scan(stream[i:min(i+step, len(stream))])
		}
		if (whole == nil) != (split == nil) {
			t.Fatalf("whole: %v, in chunks of %d: %v", whole, step, split)
		}
	})
}
