//go:build race

package vassal_test

// raceEnabled: the tests run with -race, so the vassal is built with it.
const raceEnabled = true
