package emperor

import "time"

// The spawn throttle is the second gate of admission control, in front of
// the start slots (admission.go). It keeps uWSGI's rule, from its master
// branch (reference 4.2), without its blocking sleep (bugs B7, B42):
//
//   - spawns are admitted in waves of up to ThrottleBurst vassals within one
//     second (a burst of 1 is uWSGI's "two spawns within a second");
//   - a wave that opens less than a second after the previous one raises the
//     throttle level by emperor-throttle, up to emperor-max-throttle; a wave
//     that opens later halves it;
//   - a new wave opens no sooner than the level after the previous one.
//
// So a lone spawn is never delayed, a flood of new configs or a fleet-wide
// crash storm settles at about one wave every one to two seconds, and the
// Emperor's loop never waits: throttled vassals sit in Waiting, in order, and
// one timer opens the next wave. The first scan is not throttled (only the
// start slots bound it), so a boot runs as fast as the machine allows.

// throttle is the spawn throttle's state: a pure value, changed only by take.
type throttle struct {
	level  time.Duration // the current throttle level
	wave   time.Time     // when the current wave opened; zero before the first
	inWave int           // spawns admitted in the current wave
}

// next returns the earliest time a spawn asked for at now may start.
func (t throttle) next(now time.Time, burst int) time.Time {
	if t.wave.IsZero() || t.roomAt(now, burst) {
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
// returns the new state: a place in the current wave, or a new wave that
// raises or halves the level.
func (t throttle) take(now time.Time, burst int, step, max time.Duration) throttle {
	if !t.wave.IsZero() && t.roomAt(now, burst) {
		t.inWave++
		return t
	}
	if !t.wave.IsZero() && now.Sub(t.wave) < time.Second {
		t.level = min(t.level+step, max)
	} else {
		t.level /= 2
		if t.level < time.Millisecond {
			t.level = 0
		}
	}
	t.wave, t.inWave = now, 1
	return t
}
