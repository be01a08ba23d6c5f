package broodlord

import "testing"

func TestNames(t *testing.T) {
	if got := ZergName("app.ini", 3); got != "app.ini:zerg:3" {
		t.Errorf("ZergName = %q", got)
	}
	cases := []struct {
		name, parent string
		ok           bool
	}{
		{"app.ini:zerg:1", "app.ini", true},
		{"apps/a:b/app.ini:zerg:12", "apps/a:b/app.ini", true},
		{"app.ini:zerg", "", false}, // uWSGI's own zerg section name is not ours
		{"apps/a:b/app.ini", "", false},
		{"app.ini:zerg:0", "", false},
		{"app.ini:zerg:01", "", false},
		{":zerg:1", "", false},
	}
	for _, c := range cases {
		p, ok := Parent(c.name)
		if p != c.parent || ok != c.ok {
			t.Errorf("Parent(%q) = %q, %v; want %q, %v", c.name, p, ok, c.parent, c.ok)
		}
	}
}

func TestPool(t *testing.T) {
	p := &Pool{Max: 2}
	a, _ := p.Reinforce("app.ini")
	b, _ := p.Reinforce("app.ini")
	if a != "app.ini:zerg:1" || b != "app.ini:zerg:2" {
		t.Errorf("zergs %q %q", a, b)
	}
	if _, ok := p.Reinforce("app.ini"); ok {
		t.Error("a third zerg beyond Max=2")
	}
	if _, ok := p.Reinforce("other.ini"); !ok {
		t.Error("limits are per parent, not global")
	}
	p.Retire(a)
	if c, ok := p.Reinforce("app.ini"); !ok || c != "app.ini:zerg:1" {
		t.Errorf("after retiring %s: %q %v, want the freed number", a, c, ok)
	}
	if p.Count("app.ini") != 2 || p.Count("none") != 0 {
		t.Errorf("counts %d %d", p.Count("app.ini"), p.Count("none"))
	}
	var zero Pool
	if _, ok := zero.Reinforce("x"); ok {
		t.Error("zero Pool reinforced")
	}
}
