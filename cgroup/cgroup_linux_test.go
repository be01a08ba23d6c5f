package cgroup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
)

// On a host without cgroup v2 (no cgroup.kill), a group still dies whole:
// every pid in cgroup.procs is killed until none is left.
func TestKillWithoutCgroupKill(t *testing.T) {
	testenv.Root(t)
	h, err := Open()
	if err != nil {
		testenv.Missing(t, "cgroups: "+err.Error())
	}
	if _, ok := h.v1["pids"]; !ok {
		t.Skip("no v1 pids hierarchy to stand for a v1-only host")
	}
	v1only := &Hierarchy{v1: map[string]string{"pids": h.v1["pids"]}, v2Controllers: map[string]bool{}}
	g, err := v1only.Create("v1-test", Limits{Pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove(context.Background())
	if g.V2 != "" || g.V1["pids"] == "" {
		t.Fatalf("group %+v", g)
	}
	if b, _ := os.ReadFile(filepath.Join(g.V1["pids"], "pids.max")); strings.TrimSpace(string(b)) != "16" {
		t.Errorf("pids.max = %q", b)
	}
	var cmds []*exec.Cmd
	for range 3 {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		if err := g.Join(cmd.Process.Pid, false); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(g.Pids()); n != 3 {
		t.Fatalf("%d pids in the group, want 3", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := g.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if err := c.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("sleep %d: %v, want killed", c.Process.Pid, err)
		}
	}
	if _, err := os.Stat(g.V1["pids"]); !os.IsNotExist(err) {
		t.Errorf("group directory still there: %v", err)
	}
}
