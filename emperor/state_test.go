package emperor_test

import (
	"os"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/emperor"
)

// TestREADMEStateTable checks that the README shows the transition table
// the code enforces; with UPDATE_README=1 it rewrites the README's copy.
func TestREADMEStateTable(t *testing.T) {
	const path = "../README.md"
	const begin = "<!-- state table: generated from emperor/state.go"
	const end = "<!-- end of state table -->"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i := strings.Index(readme, begin)
	j := strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("%s: no state table between %q and %q", path, begin, end)
	}
	i += strings.Index(readme[i:], "\n") + 1
	want := emperor.StateTable()
	if readme[i:j] == want {
		return
	}
	if os.Getenv("UPDATE_README") == "1" {
		if err := os.WriteFile(path, []byte(readme[:i]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the state table differs from emperor/state.go; run UPDATE_README=1 go test ./emperor -run TestREADMEStateTable\nREADME:\n%s\ncode:\n%s", path, readme[i:j], want)
}
