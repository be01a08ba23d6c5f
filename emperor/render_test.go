package emperor

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Clients asking together share renders, at most one runs at a time, and
// none gets a body rendered before it asked.
func TestRendererSharesRendersAndNeverAnswersStale(t *testing.T) {
	var renders, running, overlap, dirty atomic.Int64
	gate := make(chan struct{})
	r := newRenderer(func(ctx context.Context, scratch *bytes.Buffer) ([]byte, error) {
		if running.Add(1) > 1 {
			overlap.Add(1)
		}
		if scratch.Len() != 0 {
			dirty.Add(1) // a render must start on an empty scratch
		}
		scratch.WriteString("left behind by this render")
		defer running.Add(-1)
		n := renders.Add(1)
		if n == 1 {
			<-gate // the first render waits until every client has asked
		}
		return []byte{byte(n)}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := make(chan []byte)
	go func() {
		b, _ := r.get(ctx)
		first <- b
	}()
	for renders.Load() == 0 { // the first render is under way
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	var asking atomic.Int64
	bodies := make(chan []byte, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			asking.Add(1)
			b, err := r.get(ctx)
			if err != nil {
				t.Error(err)
			}
			bodies <- b
		}()
	}
	// Let the 100 queue behind the first render, then release it.
	for asking.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	if b := <-first; b[0] != 1 {
		t.Errorf("the first client got render %d", b[0])
	}
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if b[0] < 2 {
			t.Errorf("a client that asked during render 1 got render %d, which began before it asked", b[0])
		}
	}
	// Two renders serve them all; a loaded machine may let a few clients
	// reach get only after render 2 began, costing a render or two more.
	if n := renders.Load(); n > 10 {
		t.Errorf("%d renders for 101 clients asking together, want about 2", n)
	}
	if overlap.Load() > 0 {
		t.Error("two renders ran at once")
	}
	if n := dirty.Load(); n > 0 {
		t.Errorf("%d renders began on a scratch buffer holding the previous render's bytes", n)
	}
}
