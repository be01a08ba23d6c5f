package testkit_test

import (
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
)

func TestLogWaitWakesOnWrite(t *testing.T) {
	l, logger := testkit.NewLog()
	go logger.Info("vassal running", "vassal", "a.ini")
	line := l.WaitFor(t, "vassal running", "a.ini")
	if l.Count("vassal=a.ini") != 1 || line != l.Find("a.ini") {
		t.Fatalf("line %q, log:\n%s", line, l)
	}
	if l.Await(10*time.Millisecond, func() bool { return l.Find("never") != "" }) {
		t.Fatal("Await reported a line that was never written")
	}
}
