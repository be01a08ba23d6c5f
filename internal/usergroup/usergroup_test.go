package usergroup_test

import (
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/internal/usergroup"
)

func TestUser(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Skipf("no passwd entry for the test's user: %v", err)
	}
	uid, gid, err := usergroup.User(me.Username)
	if err != nil || strconv.Itoa(uid) != me.Uid || strconv.Itoa(gid) != me.Gid {
		t.Errorf("User(%q) = %d, %d, %v; want %s, %s", me.Username, uid, gid, err, me.Uid, me.Gid)
	}
	// A number needs no passwd entry and has no primary group.
	if uid, gid, err := usergroup.User("4000000"); err != nil || uid != 4000000 || gid != -1 {
		t.Errorf("User(4000000) = %d, %d, %v; want 4000000, -1", uid, gid, err)
	}
	if name, err := usergroup.UserName(os.Getuid()); err != nil || name != me.Username {
		t.Errorf("UserName(%d) = %q, %v; want %q", os.Getuid(), name, err, me.Username)
	}
	groups, err := usergroup.Groups(os.Getuid())
	if primary, _ := strconv.Atoi(me.Gid); err != nil || !slices.Contains(groups, primary) {
		t.Errorf("Groups(%d) = %v, %v; want them to hold the primary group %s", os.Getuid(), groups, err, me.Gid)
	}
}

func TestGroup(t *testing.T) {
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("no group entry for the test's gid: %v", err)
	}
	if gid, err := usergroup.Group(g.Name); err != nil || strconv.Itoa(gid) != g.Gid {
		t.Errorf("Group(%q) = %d, %v; want %s", g.Name, gid, err, g.Gid)
	}
	if gid, err := usergroup.Group("4000000"); err != nil || gid != 4000000 {
		t.Errorf("Group(4000000) = %d, %v", gid, err)
	}
	if name, err := usergroup.GroupName(os.Getgid()); err != nil || name != g.Name {
		t.Errorf("GroupName(%d) = %q, %v; want %q", os.Getgid(), name, err, g.Name)
	}
}

// TestErrors: a failed lookup says what it looked for.
func TestErrors(t *testing.T) {
	for _, tt := range []struct {
		lookup func() error
		want   string
	}{
		{func() error { _, _, err := usergroup.User("no-such-user-h1"); return err }, `user "no-such-user-h1": not found in the passwd database`},
		{func() error { _, _, err := usergroup.User("-1"); return err }, `user "-1"`},
		{func() error { _, err := usergroup.Group("no-such-group-h1"); return err }, `group "no-such-group-h1": not found in the group database`},
		{func() error { _, err := usergroup.UserName(3999999); return err }, `uid "3999999": not found`},
		{func() error { _, err := usergroup.GroupName(3999999); return err }, `gid "3999999": not found`},
	} {
		if err := tt.lookup(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want one saying %s", err, tt.want)
		}
	}
}
