package vassal_test

import (
	"os/exec"
	"strings"
)

// lookPerl finds perl, which some tests use to write small workers.
func lookPerl() (string, error) { return exec.LookPath("perl") }

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
