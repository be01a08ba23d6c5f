package cgroup

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
)

func TestOwnerOf(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"vassal-app.ini-1234-7", 1234, true},
		{"vassal-my-app-v2.ini-99-1", 99, true}, // dashes in the vassal's name
		{"vassal--5-1", 0, false},
		{"vassal-app.ini-x-1", 0, false},
		{"vassal-app.ini-12-", 0, false},
		{"emperor", 0, false},
		{"vassal-app.ini-0-3", 0, false},
		{"system.slice", 0, false},
	} {
		pid, ok := OwnerOf(c.name)
		if pid != c.pid || ok != c.ok {
			t.Errorf("OwnerOf(%q) = %d, %v; want %d, %v", c.name, pid, ok, c.pid, c.ok)
		}
	}
}

// Sweep removes only the groups of the owners it is told to, and kills
// what runs in them first.
func TestSweepRemovesOnlyTheOwnersGroups(t *testing.T) {
	testenv.Root(t)
	h, err := Open()
	if err != nil {
		testenv.Missing(t, "cgroups: "+err.Error())
	}
	g, err := h.Create("sweep-test", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove(context.Background())
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.Join(cmd.Process.Pid, false); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n, err := Sweep(ctx, h.Parents(), func(owner int) bool { return owner == os.Getpid()+1<<22 })
	if err != nil || n != 0 {
		t.Fatalf("sweep of another owner: removed %d, %v", n, err)
	}
	if len(g.Pids()) != 1 {
		t.Fatalf("another owner's sweep touched our group: %v", g.Pids())
	}
	n, err = Sweep(ctx, h.Parents(), func(owner int) bool { return owner == os.Getpid() })
	if err != nil || n < 1 {
		t.Fatalf("sweep of our own groups: removed %d, %v", n, err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("sleep in a swept group: %v, want killed", err)
	}
	for _, d := range append([]string{g.V2}, mapValues(g.V1)...) {
		if _, err := os.Stat(d); d != "" && !os.IsNotExist(err) {
			t.Errorf("%s still there after the sweep", d)
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// A fork the pids limit refuses is counted in Usage, so stats and metrics
// can say a vassal hit its limit.
func TestUsageCountsForksRefusedByThePidsLimit(t *testing.T) {
	testenv.Root(t)
	h, err := Open()
	if err != nil {
		testenv.Missing(t, "cgroups: "+err.Error())
	}
	g, err := h.Create("pids-refused-test", Limits{Pids: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove(context.Background())
	cmd := exec.Command("sh", "-c", "read go; for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done; exit 0")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.Join(cmd.Process.Pid, false); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	in.Write([]byte("go\n"))
	in.Close()
	cmd.Wait()
	u := g.Usage()
	if u.PidsRefused < 1 || u.Pids > 4 {
		t.Errorf("8 forks under a limit of 4: usage %+v, want pids <= 4 and some refused", u)
	}
}

// RecentUsage reads the files again only once its last reading is older
// than asked: a process that joins meanwhile shows in a fresh read, not in
// a recent one.
func TestRecentUsageRereadsOnlyWhenOld(t *testing.T) {
	testenv.Root(t)
	h, err := Open()
	if err != nil {
		testenv.Missing(t, "cgroups: "+err.Error())
	}
	g, err := h.Create("recent-usage-test", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove(context.Background())
	before := g.RecentUsage(time.Hour)
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := g.Join(cmd.Process.Pid, false); err != nil {
		t.Fatal(err)
	}
	if got := g.RecentUsage(time.Hour); got.Pids != before.Pids {
		t.Errorf("a reading an hour fresh was taken again: pids %d, then %d", before.Pids, got.Pids)
	}
	if got := g.RecentUsage(0); got.Pids != before.Pids+1 {
		t.Errorf("a fresh reading shows %d tasks, want %d", got.Pids, before.Pids+1)
	}
}
