package emperor

import "time"

// stamp is a moment on the Emperor's monotonic clock, in nanoseconds since
// the process started; 0 is "never". It is 8 bytes where a time.Time is 24,
// and a vassal keeps ten moments: at 10,000 vassals that is 1.5 MiB.
// Durations between stamps are immune to wall-clock steps, as time.Time's
// monotonic readings are.
type stamp int64

// epoch is the clock's zero.
var epoch = time.Now()

// stampNow is the current moment, never 0.
func stampNow() stamp { return max(stamp(time.Since(epoch)), 1) }

// IsZero reports whether s is "never".
func (s stamp) IsZero() bool { return s == 0 }

// Time is s as a time.Time (the zero Time for "never").
func (s stamp) Time() time.Time {
	if s == 0 {
		return time.Time{}
	}
	return epoch.Add(time.Duration(s))
}

// Since is the time elapsed since s.
func (s stamp) Since() time.Duration { return time.Since(epoch) - time.Duration(s) }

// Unix is s in seconds since the Unix epoch (0 for "never"), as the stats
// give moments.
func (s stamp) Unix() int64 {
	if s == 0 {
		return 0
	}
	return s.Time().Unix()
}
