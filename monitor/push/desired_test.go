package push_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/journal"
	"github.com/emperor-dev/emperor/monitor/push"
)

func inline(name string) journal.Entry {
	return journal.Entry{Name: name, Config: []byte("[uwsgi]\n# " + name + "\n"), Source: "config"}
}

// TestDesired_DamagedJournal: ten vassals pushed, the journal cut short (as
// a full disk or a bad copy leaves it): at restart the nine whole records
// come back, one log line names the damaged file kept aside, and the next
// push keeps all of them (the previous release started empty and then
// overwrote the journal with the one new vassal).
func TestDesired_DamagedJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	out := make(chan monitor.Event, 64)
	_, discard := testkit.NewLog()
	d, err := push.NewDesired("zmq://x", "zmq://x", dir, nil, discard)
	if err != nil {
		t.Fatal(err)
	}
	d.Start(ctx, out, nil)
	acked := 0
	for i := range 10 {
		d.Touch(ctx, out, inline(fmt.Sprintf("v%d.ini", i)), "test")
		d.Then(func() { acked++ })
	}
	d.Close()
	if acked != 10 || len(out) != 10 {
		t.Fatalf("%d acknowledged, %d emitted; want 10 each", acked, len(out))
	}
	for len(out) > 0 {
		<-out
	}
	j, _ := journal.Open(dir, "zmq://x", "zmq://x")
	b, err := os.ReadFile(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(j.Path(), b[:len(b)-5], 0o600)

	log, logger := testkit.NewLog()
	var status push.Status
	d, err = push.NewDesired("zmq://x", "zmq://x", dir, &status, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Start(ctx, out, nil)
	replayed := map[string]bool{}
	for len(out) > 0 {
		ev := <-out
		if ev.Op != monitor.Touch || ev.Reason != "journal replay" {
			t.Errorf("replay emitted %s %s (%s)", ev.Op, ev.Key.Name, ev.Reason)
		}
		replayed[ev.Key.Name] = true
	}
	if len(replayed) != 9 || replayed["v9.ini"] {
		t.Errorf("replayed %v, want v0 to v8", replayed)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "*.corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("kept aside: %q, want one file", aside)
	}
	if n := log.Count("push journal damaged", aside[0]); n != 1 {
		t.Errorf("%d log lines name the file kept aside, want 1; log:\n%s", n, log)
	}
	if got := status.Status()["journal_kept_aside"]; got != aside[0] {
		t.Errorf("status journal_kept_aside = %v, want %s", got, aside[0])
	}
	d.Touch(ctx, out, inline("new.ini"), "test")
	b, _ = os.ReadFile(j.Path())
	entries, err := journal.Decode(b)
	if len(entries) != 10 || err != nil {
		t.Errorf("after the next push the journal holds %d entries (%v), want 10", len(entries), err)
	}
}

// TestDesired_NoJournal: without emperor-state-dir changes apply at once,
// and Then runs at once.
func TestDesired_NoJournal(t *testing.T) {
	ctx := context.Background()
	log, logger := testkit.NewLog()
	d, err := push.NewDesired("zmq://x", "zmq://x", "", nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out := make(chan monitor.Event, 4)
	d.Start(ctx, out, nil)
	d.Touch(ctx, out, inline("a.ini"), "test")
	ran := false
	d.Then(func() { ran = true })
	if !ran || len(out) != 1 || d.Blocked() {
		t.Errorf("Then ran %v, %d events, blocked %v", ran, len(out), d.Blocked())
	}
	if !strings.Contains(log.String(), "will not survive an Emperor restart") {
		t.Errorf("no warning about the missing state dir; log:\n%s", log)
	}
}
