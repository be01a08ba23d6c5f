package emperor

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// renderGap is the least time between the end of one render and the start
// of the next.
const renderGap = 20 * time.Millisecond

// renderer shares the rendering of an answer (the stats JSON, the metrics
// text) among the clients that ask at the same time, with at most one
// render under way: 2,000 clients connecting at once cost two snapshots of
// the loop, two reads of every cgroup and two encodings, not 2,000, and
// hold one body between them. No client gets a stale answer: each waits
// for a render that began after it asked.
//
// render gets a scratch buffer of the renderer's own, kept from one render
// to the next and never handed to a client, and returns a new body: the
// only memory a render leaves behind is its answer, not the buffers that
// built it (a burst of renders for slow clients at 1,000 vassals grew the
// heap by several MiB of such garbage).
type renderer struct {
	render  func(ctx context.Context, scratch *bytes.Buffer) ([]byte, error)
	scratch bytes.Buffer // used by one render at a time: see running

	mu      sync.Mutex
	running bool
	next    *renderCall // the render that starts when the running one ends
}

type renderCall struct {
	done chan struct{}
	body []byte
	err  error
}

func newRenderer(render func(ctx context.Context, scratch *bytes.Buffer) ([]byte, error)) *renderer {
	return &renderer{render: render}
}

// get returns a body rendered after the call, or ctx's error.
func (r *renderer) get(ctx context.Context) ([]byte, error) {
	r.mu.Lock()
	c := r.next
	if c == nil {
		c = &renderCall{done: make(chan struct{})}
		r.next = c
	}
	if !r.running {
		r.startLocked()
	}
	r.mu.Unlock()
	select {
	case <-c.done:
		return c.body, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startLocked starts the pending render in its own goroutine, bounded by
// connDeadline rather than by any one client, and the next one when it
// ends if clients asked meanwhile.
func (r *renderer) startLocked() {
	c := r.next
	r.next, r.running = nil, true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), connDeadline)
		r.scratch.Reset()
		c.body, c.err = r.render(ctx, &r.scratch)
		cancel()
		close(c.done)
		// A gap before the next render gathers more of the clients that
		// keep arriving into it: a storm of them costs at most 1/renderGap
		// renders a second, not one after the other without end.
		time.AfterFunc(renderGap, func() {
			r.mu.Lock()
			r.running = false
			if r.next != nil {
				r.startLocked()
			}
			r.mu.Unlock()
		})
	}()
}
