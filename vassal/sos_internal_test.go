package vassal

import (
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/protocol"
)

// Reinforcements (30) are rate-limited in the time of the TCP table's
// samples, not in the time they reach the Emperor: with a queue that never
// drains, vassal-sos = 2 asks every 2 s once the queue is 2 s old, and
// vassal-sos-backlog every 5 s while the queue is at its limit.
func TestSOSIsRateLimitedInSampleTime(t *testing.T) {
	for _, c := range []struct {
		name string
		s    Settings
		want int // bytes 30 over eleven samples, one a second
	}{
		{"vassal-sos = 2", Settings{SOS: 2 * time.Second}, 5},  // at 2, 4, 6, 8, 10 s
		{"vassal-sos-backlog = 2", Settings{SOSBacklog: 2}, 3}, // at 0, 5, 10 s
		{"vassal-sos-backlog = 4", Settings{SOSBacklog: 4}, 0}, // the queue holds 3
	} {
		t.Run(c.name, func(t *testing.T) {
			rd, wr, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40123}
			r := &runner{
				log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
				em:       &emperorClient{ctl: wr},
				settings: c.s,
				gens:     []*generation{{sockets: []*listener{{local: local}}}},
			}
			t0 := time.Unix(1000, 0)
			queued := []tcpEntry{{local: procNetAddr(local), state: tcpListen, rxQueue: 3}}
			for i := range 11 {
				r.watchLoad(netSample{at: t0.Add(time.Duration(i) * time.Second), entries: queued})
			}
			wr.Close()
			got, err := io.ReadAll(rd)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, b := range got {
				if b == byte(protocol.Reinforcements) {
					n++
				}
			}
			if n != c.want || n != len(got) {
				t.Errorf("sent %v: %d bytes 30, want %d and nothing else", got, n, c.want)
			}
		})
	}
}
