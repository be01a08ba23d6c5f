package emperor_test

import (
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/monitortest"
)

// An inline config above uWSGI's 64 KiB frame is refused with a clear
// reason for uWSGI vassals, and delivered whole to ours.
func TestInlineConfigAbove64KiB(t *testing.T) {
	for _, extended := range []bool{false, true} {
		fake := monitortest.New("db")
		h := startEmperor(t, setup{monitors: []monitor.Monitor{fake}, opts: func(o *emperor.Options) { o.ExtendedFrames = extended }})
		big := h.vassalConfig("name = big\n" + strings.Repeat("; padding to pass the 64 KiB frame limit\n", 2000))
		fake.Events <- monitor.Event{Op: monitor.Touch, Key: monitor.Key{Name: "big.ini"}, Config: []byte(big), Version: monitor.Version{Hash: "1"}}
		if !extended {
			n := h.WaitNote("refusal", func(n emperor.Note) bool { return n.Key.Name == "big.ini" && n.To == emperor.Disabled })
			if !strings.Contains(n.Reason, "above the 65535 a uWSGI vassal reads") {
				t.Errorf("refused with %q", n.Reason)
			}
			continue
		}
		// The test vassal exits 1 before sending any byte when it cannot
		// read and parse its config (its report is too big for a datagram).
		h.WaitNote("byte 5 from the big vassal", func(n emperor.Note) bool {
			return n.Key.Name == "big.ini" && n.IsByte && n.Byte == 5
		})
	}
}
