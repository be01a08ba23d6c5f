package tyrant

import (
	"errors"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
)

func TestCredential(t *testing.T) {
	c, err := Credential("app.ini", &monitor.Owner{UID: 1000, GID: 100})
	if err != nil || c.Uid != 1000 || c.Gid != 100 || c.Groups == nil || len(c.Groups) != 0 || c.NoSetGroups {
		t.Errorf("Credential = %+v, %v; want uid 1000 gid 100 and no supplementary groups", c, err)
	}
	for _, o := range []*monitor.Owner{nil, {UID: 0, GID: 100}, {UID: 1000, GID: 0}} {
		_, err := Credential("app.ini", o)
		var te *Error
		if !errors.As(err, &te) || te.Vassal != "app.ini" {
			t.Errorf("Credential(%+v) = %v, want a tyrant refusal", o, err)
		}
	}
}

func TestGroups(t *testing.T) {
	// No passwd entry: the gid alone.
	if g := Groups(65533, 65532); len(g) != 1 || g[0] != 65532 {
		t.Errorf("Groups(65533) = %v, want [65532]", g)
	}
	// root exists everywhere and is in group 0.
	g := Groups(0, 0)
	if len(g) == 0 || g[0] != 0 {
		t.Errorf("Groups(0) = %v, want 0 first", g)
	}
	for i, x := range g[1:] {
		if x == 0 {
			t.Errorf("gid repeated at %d: %v", i+1, g)
		}
	}
}
