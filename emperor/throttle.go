package emperor

import "time"

// The spawn throttle is the second gate of admission control, in front of
// the start slots (admission.go). It throttles failures, not deployments:
//
//   - while the level is zero, spawns pass straight to the start slots, so
//     a flood of healthy new configs is bounded only by
//     emperor-max-starting (uWSGI 2.0 does not throttle spawns at all; its
//     master branch delays every spawn, which made a flood of 200 healthy
//     configs 9x slower than uWSGI 2.0 here);
//   - a spawn that fails (dies before it became loyal, within StableRun, or
//     is killed for flooding) raises the level by emperor-throttle, at most
//     once per level (a storm of failures raises it by one step per level
//     it lasts: 1 s, then 2 s after a second of failures, then 3 s after two
//     more), up to emperor-max-throttle;
//   - while the level is above zero, spawns are admitted in waves of up to
//     ThrottleBurst within one second, a new wave no sooner than the level
//     after the previous one; a wave that opens with no failure since the
//     previous one halves the level;
//   - blacklist-clear (SIGURG, the command) sets it back to zero.
//
// So in a crash storm (a fleet-wide bad deploy) at most ThrottleBurst spawns
// start per level: ThrottleBurst per emperor-throttle at worst (8 per second
// with the defaults on 2 CPUs), fewer as the storm goes on, and each
// crashing vassal also waits out its own growing respawn penalty
// (policy.go). The loop never waits: throttled vassals sit in Waiting, in
// order, and one timer opens the next wave.

// throttle is the spawn throttle's state: a pure value, changed only by
// take and fail.
type throttle struct {
	level  time.Duration // the current throttle level
	wave   time.Time     // when the current wave opened; zero before the first
	inWave int           // spawns admitted in the current wave
	raised time.Time     // when a failure last raised the level
	failed bool          // a spawn failed since the current wave opened
}

// next returns the earliest time a spawn asked for at now may start.
func (t throttle) next(now time.Time, burst int) time.Time {
	if t.level == 0 || t.wave.IsZero() || t.roomAt(now, burst) {
		return now
	}
	if at := t.wave.Add(t.level); at.After(now) {
		return at
	}
	return now
}

// roomAt reports whether the current wave can take one more spawn at now.
func (t throttle) roomAt(now time.Time, burst int) bool {
	return t.inWave < burst && now.Sub(t.wave) < time.Second
}

// take records a spawn admitted at now (no earlier than next said) and
// returns the new state: a place in the current wave, or a new wave, which
// halves the level when no spawn failed during the previous one.
func (t throttle) take(now time.Time, burst int) throttle {
	if !t.wave.IsZero() && t.roomAt(now, burst) {
		t.inWave++
		return t
	}
	if !t.failed {
		t.level /= 2
		if t.level < time.Millisecond {
			t.level = 0
		}
	}
	t.wave, t.inWave, t.failed = now, 1, false
	return t
}

// fail records a spawn that failed at now: the level rises by step (capped
// at max) unless a failure already raised it less than a level ago.
func (t throttle) fail(now time.Time, step, max time.Duration) throttle {
	t.failed = true
	if t.raised.IsZero() || now.Sub(t.raised) >= t.level {
		t.level = min(t.level+step, max)
		t.raised = now
	}
	return t
}
