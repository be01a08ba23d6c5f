package emperor

import "time"

// A vassal's control channel carries a handful of bytes in its life: 1, 5
// and 17 at start, a heartbeat every few seconds, now and then a reload
// answer, a config request or a call for reinforcements. The Emperor reads
// at most ctlRead bytes per wake-up, and lets each process spend ctlRate
// bytes a second with bursts of ctlBurst: far more than any protocol use,
// far less than a loop would need to fall behind. A vassal over budget is
// read slower; one still over budget after floodAfter is killed.
const (
	ctlRead    = 64
	ctlRate    = 32 // bytes a second
	ctlBurst   = 256
	floodAfter = 5 * time.Second
)

// byteBudget is a token bucket of bytes, refilled at ctlRate up to
// ctlBurst: a pure value of the time it is asked at.
type byteBudget struct {
	tokens float64
	at     stamp // when tokens was last refilled; zero: a full bucket
}

func (b *byteBudget) refill(now stamp) {
	if b.at.IsZero() {
		b.tokens, b.at = ctlBurst, now
		return
	}
	if d := time.Duration(now - b.at); d > 0 {
		b.tokens = min(ctlBurst, b.tokens+d.Seconds()*ctlRate)
		b.at = now
	}
}

// allow returns how many bytes may be read at now: at most ctlRead.
func (b *byteBudget) allow(now stamp) int {
	b.refill(now)
	return min(ctlRead, int(b.tokens))
}

// spend takes n bytes from the budget.
func (b *byteBudget) spend(n int) { b.tokens -= float64(n) }

// until returns how long after now the budget allows n bytes.
func (b *byteBudget) until(now stamp, n int) time.Duration {
	b.refill(now)
	missing := float64(n) - b.tokens
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / ctlRate * float64(time.Second))
}

// ctlIn is the read side of a process's control channel.
type ctlIn struct {
	budget byteBudget
	// limitedSince is when the process first found its budget spent
	// without draining its channel since; zero when it is within budget.
	limitedSince stamp
	resume       *time.Timer // re-arms the channel of a rate-limited process
}
