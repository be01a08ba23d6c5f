package emperortest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// Inbox records values that arrive while a test runs (an Emperor's notes, a
// test vassal's reports) and lets the test wait for one. Nothing is ever
// dropped: a wait takes the earliest value that matches and leaves the
// others for later waits, so the order in which concurrent things happen
// does not matter to a test. Waits wake on each Add, never on a poll
// interval. The zero value is ready to use.
type Inbox[T any] struct {
	mu      sync.Mutex
	all     []T
	taken   []bool
	changed chan struct{} // closed and cleared by the next Add
}

// Add records x and wakes every waiter. It never blocks for long, so it
// may be called from an Emperor's Notify.
func (b *Inbox[T]) Add(x T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.all = append(b.all, x)
	b.taken = append(b.taken, false)
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// All returns every value recorded so far, in order, taken or not.
func (b *Inbox[T]) All() []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]T(nil), b.all...)
}

// Wait returns the earliest value not taken yet that matches, and takes
// it, waiting up to testkit.Deadline; what names it in the failure, which
// lists the values left. Within one Wait, match sees each value at most
// once, in order, so it may count what it sees.
func (b *Inbox[T]) Wait(t testing.TB, what string, match func(T) bool) T {
	t.Helper()
	if x, ok := b.await(testkit.Deadline, match); ok {
		return x
	}
	t.Fatalf("nothing matched %s within %s; not taken:%s", what, testkit.Deadline, b.left())
	panic("unreachable")
}

// await is Wait without the test: it reports whether a value matched
// within d.
func (b *Inbox[T]) await(d time.Duration, match func(T) bool) (T, bool) {
	return b.watch(d, 0, func(i int, x T) bool {
		return !b.isTaken(i) && match(x) && b.take(i)
	})
}

func (b *Inbox[T]) isTaken(i int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.taken[i]
}

// take marks value i taken; it reports false if another wait took it first.
func (b *Inbox[T]) take(i int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.taken[i] {
		return false
	}
	b.taken[i] = true
	return true
}

// watch offers each value from index next on to found, in order and once,
// now and after every Add, until found returns true or d passes. found
// runs unlocked: it may wait on the Emperor whose Notify calls Add.
func (b *Inbox[T]) watch(d time.Duration, next int, found func(i int, x T) bool) (T, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		b.mu.Lock()
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		ch, all := b.changed, b.all
		b.mu.Unlock()
		for ; next < len(all); next++ {
			if found(next, all[next]) {
				return all[next], true
			}
		}
		select {
		case <-ch:
		case <-timer.C:
			var zero T
			return zero, false
		}
	}
}

// left describes the values not taken, one a line.
func (b *Inbox[T]) left() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s strings.Builder
	for i, x := range b.all {
		if !b.taken[i] {
			fmt.Fprintf(&s, "\n  %+v", x)
		}
	}
	return s.String()
}

// Cursor reads an Inbox in order from where it was made, seeing every value
// once, taken by a Wait or not.
type Cursor[T any] struct {
	b    *Inbox[T]
	next int
}

// From returns a cursor at the next value to arrive.
func (b *Inbox[T]) From() *Cursor[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &Cursor[T]{b: b, next: len(b.all)}
}

// Next returns the next value, waiting up to testkit.Deadline for it.
func (c *Cursor[T]) Next(t testing.TB, what string) T {
	t.Helper()
	return c.Until(t, what, func(T) bool { return true })
}

// Until skips values until one matches and returns it, waiting up to
// testkit.Deadline; the skipped values stay in the Inbox for its Waits.
func (c *Cursor[T]) Until(t testing.TB, what string, match func(T) bool) T {
	t.Helper()
	x, ok := c.b.watch(testkit.Deadline, c.next, func(i int, x T) bool {
		c.next = i + 1
		return match(x)
	})
	if !ok {
		t.Fatalf("nothing matched %s within %s", what, testkit.Deadline)
	}
	return x
}
