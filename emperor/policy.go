package emperor

import "time"

// respawnDelay is the penalty before respawning a vassal that died on its
// own, a pure function of its history.
//
// uWSGI punishes every delete of an unloyal vassal with a penalty that
// starts at 1 ms (a unit bug), grows by 1 s per death and oscillates between
// 90 and 180 s (bug B11). Ours: the first unexpected death respawns at once;
// each further consecutive death before the vassal became loyal adds one
// throttle step, capped at max; loyalty, a run of StableRun, SIGURG or the
// blacklist-clear command reset the count. Deliberate stops never count.
func respawnDelay(unloyalDeaths int, throttle, max time.Duration, disabled bool) time.Duration {
	if disabled || unloyalDeaths <= 1 {
		return 0
	}
	d := time.Duration(unloyalDeaths-1) * throttle
	if d > max || d < 0 {
		d = max
	}
	return d
}
