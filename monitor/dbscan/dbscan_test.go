package dbscan

import (
	"errors"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
)

func row(name, config string, mod int64) Row {
	return Row{Where: "row " + name, Name: name, Config: []byte(config), ModTime: mod}
}

func ops(res Result) map[string]monitor.Op {
	m := map[string]monitor.Op{}
	for _, ev := range res.Events {
		m[ev.Key.Name] = ev.Op
	}
	return m
}

func TestApplyEmitsOnlyDifferences(t *testing.T) {
	s := NewSnapshot("pg://x", Checks{}, 0)
	res := s.Apply([]Row{row("a.ini", "A", 1), row("b.ini", "B", 1)}, "scan", false)
	if got := ops(res); len(got) != 2 || got["a.ini"] != monitor.Touch || got["b.ini"] != monitor.Touch {
		t.Fatalf("first scan: %v", got)
	}
	if res := s.Apply([]Row{row("b.ini", "B", 1), row("a.ini", "A", 1)}, "scan", false); len(res.Events) != 0 {
		t.Errorf("same rows in another order: %v", ops(res))
	}
	// Text changed with the same time, time changed with the same text, one gone.
	res = s.Apply([]Row{row("a.ini", "A2", 1), row("c.ini", "C", 1)}, "scan", false)
	if got := ops(res); len(got) != 3 || got["a.ini"] != monitor.Touch || got["b.ini"] != monitor.Destroy || got["c.ini"] != monitor.Touch {
		t.Errorf("changes: %v", got)
	}
	res = s.Apply([]Row{row("a.ini", "A2", 2), row("c.ini", "C", 1)}, "scan", false)
	if got := ops(res); len(got) != 1 || got["a.ini"] != monitor.Touch {
		t.Errorf("time change: %v", got)
	}
}

func TestApplyBadRows(t *testing.T) {
	s := NewSnapshot("pg://x", Checks{Tyrant: true}, 0)
	own := &monitor.Owner{UID: 1000, GID: 1000}
	good := row("a.ini", "A", 1)
	good.Owner = own
	root := row("r.ini", "R", 1)
	root.Owner = &monitor.Owner{}
	broken := Row{Where: "row 3", Err: errors.New("name (column 1): is NULL")}
	dup := good
	res := s.Apply([]Row{good, root, broken, dup, row("n.ini", "N", 1)}, "", false)
	if got := ops(res); len(got) != 1 || got["a.ini"] != monitor.Touch {
		t.Errorf("events: %v", got)
	}
	if len(res.NewBad) != 4 {
		t.Errorf("bad rows reported: %+v, want root, broken, duplicate, no owner", res.NewBad)
	}
	// Reported once; a known vassal whose row turns bad is kept.
	bad := good
	bad.Config = nil
	res = s.Apply([]Row{bad, root, broken, dup, row("n.ini", "N", 1)}, "", false)
	if len(res.Events) != 0 {
		t.Errorf("a bad row of a known vassal emitted %v", ops(res))
	}
	if len(res.NewBad) != 1 || !res.NewBad[0].Kept {
		t.Errorf("second scan reported %+v, want only a.ini, kept", res.NewBad)
	}
}

func TestApplyMaxRemovals(t *testing.T) {
	s := NewSnapshot("pg://x", Checks{}, 2)
	s.Apply([]Row{row("a.ini", "A", 1), row("b.ini", "B", 1), row("c.ini", "C", 1)}, "", false)
	res := s.Apply(nil, "", false)
	if len(res.Events) != 0 || res.Held != 3 {
		t.Errorf("truncated table: events %v held %d", ops(res), res.Held)
	}
	if res := s.Apply(nil, "", false); res.Held != 0 || len(res.Events) != 0 {
		t.Errorf("second scan: held reported again (%d) or events %v", res.Held, ops(res))
	}
	if res := s.Apply(nil, "", true); len(res.Events) != 3 {
		t.Errorf("forced: %v", ops(res))
	}
}
