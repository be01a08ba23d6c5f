package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// The real binaries: a .conf vassal (emperor-extra-extension, so --config
// app.conf) and an executable one (emperor-magic-exec, so --ini
// exec://PATH) both come up under our vassal, which runs as the
// emperor-wrapper-fallback since the override and binary-path do not
// exist.
func TestWrapperMagicExecAndExtraExtension(t *testing.T) {
	bin := t.TempDir()
	buildInto(t, bin)
	dir, marks := t.TempDir(), t.TempDir()
	worker := filepath.Join(t.TempDir(), "worker.sh")
	os.WriteFile(worker, []byte("#!/bin/sh\necho up > "+marks+"/$1\nexec sleep 600\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "app.conf"), []byte("[uwsgi]\nworker-exec = "+worker+" conf\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "gen.ini"), []byte("#!/bin/sh\necho '[uwsgi]'\necho 'worker-exec = "+worker+" gen'\n"), 0o755)
	e := startEmperor(t, bin, "--dir", dir, "--emperor-extra-extension", ".conf", "--emperor-magic-exec",
		"--emperor-wrapper-override", filepath.Join(bin, "no-such-vassal"), "--binary-path", "/nonexistent/vassal",
		"--emperor-wrapper-fallback", filepath.Join(bin, "vassal"))
	e.waitLine(`running emperor-wrapper-fallback ` + filepath.Join(bin, "vassal") +
		`, its config from exec://` + filepath.Join(dir, "gen.ini") + ` (emperor-magic-exec)`)
	for _, name := range []string{"conf", "gen"} {
		deadline := time.Now().Add(testkit.Deadline)
		for {
			if b, err := os.ReadFile(filepath.Join(marks, name)); err == nil && string(b) == "up\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the %s vassal's worker never ran; the Emperor's log:\n%s", name, e.log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
