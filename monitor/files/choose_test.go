package files_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
)

// Reference 3.1: an existing directory is a dir monitor, a pattern or a
// path that does not exist is a glob; a scheme prefix wins.
func TestChooseAndOpen(t *testing.T) {
	root := realDir(t)
	writeFile(t, filepath.Join(root, "a.ini"), "x")
	mkdir(t, filepath.Join(root, "vassals"))
	if s := monitor.Schemes(); !slices.Contains(s, "dir") || !slices.Contains(s, "glob") {
		t.Fatalf("schemes %v lack dir and glob", s)
	}
	for _, tc := range []struct {
		value, scheme, id string
	}{
		{root, "dir", "dir://" + root},
		{root + "/", "dir", "dir://" + root},
		{root + "/vass*", "dir", "dir://" + root + "/vassals"}, // exactly one directory matches
		{root + "/a.*", "glob", "glob://" + root + "/a.*"},     // one match, not a directory
		{root + "/*.ini", "glob", "glob://" + root + "/*.ini"},
		{root + "/missing", "glob", "glob://" + root + "/missing"},
		{root + "/missing/*.ini", "glob", "glob://" + root + "/missing/*.ini"},
		{"dir://" + root, "dir", "dir://" + root},
		{"glob://" + root + "/*.ini", "glob", "glob://" + root + "/*.ini"},
	} {
		scheme, _, err := monitor.Choose(tc.value)
		if err != nil {
			t.Errorf("Choose(%q): %v", tc.value, err)
			continue
		}
		if scheme != tc.scheme {
			t.Errorf("Choose(%q) = %s, want %s", tc.value, scheme, tc.scheme)
		}
		m, err := monitor.Open(tc.value, monitor.Options{})
		if err != nil {
			t.Errorf("Open(%q): %v", tc.value, err)
			continue
		}
		if m.ID() != tc.id {
			t.Errorf("Open(%q).ID() = %q, want %q", tc.value, m.ID(), tc.id)
		}
	}
	if _, err := monitor.Open("dir://"+root+"/missing", monitor.Options{}); err == nil ||
		!strings.Contains(err.Error(), "no such directory") {
		t.Errorf("Open(dir:// missing) = %v", err)
	}
}
