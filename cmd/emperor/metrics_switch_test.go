package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// TestMetricsPerVassalFalse runs a real Emperor with
// emperor-metrics-per-vassal = false in its ini: its scrape names no
// vassal, counts them by state, and passes promtool.
func TestMetricsPerVassalFalse(t *testing.T) {
	bin := buildBinaries(t)
	dir := t.TempDir()
	for _, n := range []string{"a.ini", "b.ini"} {
		os.WriteFile(filepath.Join(dir, n), []byte("[uwsgi]\nworker-exec = sleep 600\n"), 0o644)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ini := filepath.Join(t.TempDir(), "emperor.ini")
	os.WriteFile(ini, []byte(fmt.Sprintf("[uwsgi]\nemperor = %s\nbinary-path = %s\nemperor-cgroup = false\nemperor-metrics = %s\nemperor-metrics-per-vassal = false\n",
		dir, filepath.Join(bin, "vassal"), addr)), 0o644)
	runEmperor(t, bin, "--ini", ini)
	const want = `emperor_vassals_loyal{state="running"} 2`
	var text string
	for deadline := time.Now().Add(testkit.Deadline); !strings.Contains(text, want); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the scrape:\n%s", want, text)
		}
		time.Sleep(50 * time.Millisecond)
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			text = string(b)
		}
	}
	if strings.Contains(text, "vassal=") {
		t.Errorf("the scrape names vassals:\n%s", text)
	}
	for _, w := range []string{`emperor_vassals{state="running"} 2`, `emperor_vassals_up{state="running"} 2`, `emperor_vassals_penalised{state="running"} 0`} {
		if !strings.Contains(text, w) {
			t.Errorf("the scrape lacks %s:\n%s", w, text)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (Debian package prometheus)")
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(text)
	out, err := check.CombinedOutput()
	// Exit 3 is lint warnings only (counter naming, issue 19).
	if err != nil && check.ProcessState.ExitCode() != 3 || strings.Contains(string(out), "error while linting") {
		t.Errorf("promtool: %v\n%s", err, out)
	}
}
