package emperortest_test

import (
	"testing"

	"github.com/emperor-dev/emperor/internal/emperortest"
)

// A wait takes the earliest match and leaves the rest for later waits; a
// cursor sees everything in order, taken or not; a value added while a
// wait waits wakes it.
func TestInboxKeepsWhatAWaitDidNotTake(t *testing.T) {
	var in emperortest.Inbox[int]
	c := in.From()
	for _, x := range []int{1, 2, 3, 4} {
		in.Add(x)
	}
	even := func(x int) bool { return x%2 == 0 }
	if got := in.Wait(t, "an even number", even); got != 2 {
		t.Errorf("first even = %d, want 2", got)
	}
	if got := in.Wait(t, "another even number", even); got != 4 {
		t.Errorf("second even = %d, want 4 (2 was taken)", got)
	}
	seen := 0
	in.Wait(t, "the odd numbers, each offered once", func(x int) bool { seen++; return x == 3 })
	if seen != 2 {
		t.Errorf("the wait for 3 was offered %d values, want 1 and 3 only", seen)
	}
	for want := 1; want <= 4; want++ {
		if got := c.Next(t, "the next value"); got != want {
			t.Errorf("cursor read %d, want %d", got, want)
		}
	}
	go in.Add(5)
	if got := in.Wait(t, "a value added later", func(x int) bool { return x == 5 }); got != 5 {
		t.Errorf("got %d, want 5", got)
	}
	if got := len(in.All()); got != 5 {
		t.Errorf("All holds %d values, want 5", got)
	}
}
