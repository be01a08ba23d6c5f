package emperor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModePermitsAsTheKernelChecks(t *testing.T) {
	owner := &runner{uid: 1000, gid: 100}
	member := &runner{uid: 1001, gid: 200, groups: []uint32{100}}
	other := &runner{uid: 1002, gid: 300}
	root := &runner{uid: 0, gid: 0}
	for _, tc := range []struct {
		perm os.FileMode
		who  *runner
		bit  os.FileMode
		want bool
	}{
		{0o700, owner, 1, true},
		{0o070, owner, 1, false}, // the owner's bits decide for the owner
		{0o070, member, 1, true},
		{0o007, member, 1, false},
		{0o005, other, 1, true},
		{0o750, other, 4, false},
		{0o644, root, 1, false}, // root needs one execute bit
		{0o100, root, 1, true},
		{0o000, root, 4, true},
	} {
		if got := modePermits(tc.perm, 1000, 100, tc.who, tc.bit); got != tc.want {
			t.Errorf("mode %o, uid %d, bit %o: %v, want %v", tc.perm, tc.who.uid, tc.bit, got, tc.want)
		}
	}
}

func TestQuoteIfNeeded(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/vassals/app.ini":   "/etc/vassals/app.ini",
		"/srv/my app.ini":        "'/srv/my app.ini'",
		"/srv/it's;rm -rf x.ini": `'/srv/it'\''s;rm -rf x.ini'`,
	} {
		if got := quoteIfNeeded(in); got != want {
			t.Errorf("quoteIfNeeded(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLookBinaryLikeExecvp(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin", "tool")
	os.MkdirAll(filepath.Dir(exe), 0o755)
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644)
	path := "/nonexistent:" + filepath.Join(dir, "bin")
	for _, tc := range []struct{ name, want, err string }{
		{"tool", exe, ""},
		{"bin/tool", exe, ""}, // relative to the vassal's directory
		{exe, exe, ""},
		{"missing", "", "not found in PATH"},
		{"./plain", "", "not executable"},
		{dir, "", "not a regular file"},
	} {
		got, err := lookBinary(tc.name, dir, path, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("lookBinary(%q): %v, want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("lookBinary(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
