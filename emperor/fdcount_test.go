package emperor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/emperor-dev/emperor/emperor"
)

// countFds counts this process's open fds.
func countFds(t *testing.T) int {
	t.Helper()
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(names) - 1 // the directory read itself
}

// The Emperor holds one fd per vassal configured from a file: its control
// socket. Exits come from the SIGCHLD reaper, not from a pidfd each.
func TestEmperorHoldsOneFdPerVassal(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}})
	h.WaitScanned()
	before := countFds(t)
	for i := range n {
		writeFileAtomic(t, filepath.Join(dir, fmt.Sprintf("app%02d.ini", i)), h.vassalConfig(fmt.Sprintf("name = app%02d", i)))
	}
	for i := range n {
		h.WaitState(fmt.Sprintf("app%02d.ini", i), emperor.Running)
		h.WaitBytes(5, fmt.Sprintf("app%02d.ini", i))
	}
	after := countFds(t)
	t.Logf("%d fds before, %d with %d vassals: %.2f per vassal", before, after, n, float64(after-before)/n)
	if after-before > n {
		t.Errorf("%d vassals cost the Emperor %d fds, want at most one each", n, after-before)
	}
}
