//go:build !race

package vassal_test

// raceEnabled: the tests run without -race.
const raceEnabled = false
