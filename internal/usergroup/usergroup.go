// Package usergroup resolves users and groups the way uWSGI options give
// them, by name or by number, and names them back: the one place the
// vassal's uid, gid and chown-socket options, the config magic variables
// %U and %G, and tyrant mode's initgroups look them up. Every error names
// the user or group it was about.
package usergroup

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
)

// User resolves a user given by name or by number (a uid, which needs no
// passwd entry). gid is the user's primary group from the passwd database,
// or -1 when v is a number.
func User(v string) (uid, gid int, err error) {
	if n, ok := number(v); ok {
		return n, -1, nil
	}
	u, err := user.Lookup(v)
	if err != nil {
		return 0, 0, lookupErr("user", v, err)
	}
	if uid, err = strconv.Atoi(u.Uid); err != nil {
		return 0, 0, fmt.Errorf("user %q: uid %q is not a number", v, u.Uid)
	}
	if gid, err = strconv.Atoi(u.Gid); err != nil {
		return 0, 0, fmt.Errorf("user %q: primary gid %q is not a number", v, u.Gid)
	}
	return uid, gid, nil
}

// Group resolves a group given by name or by number (a gid, which needs no
// group entry).
func Group(v string) (int, error) {
	if n, ok := number(v); ok {
		return n, nil
	}
	g, err := user.LookupGroup(v)
	if err != nil {
		return 0, lookupErr("group", v, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q: gid %q is not a number", v, g.Gid)
	}
	return gid, nil
}

// UserName returns the name of uid from the passwd database.
func UserName(uid int) (string, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return "", lookupErr("uid", strconv.Itoa(uid), err)
	}
	return u.Username, nil
}

// GroupName returns the name of gid from the group database.
func GroupName(gid int) (string, error) {
	g, err := user.LookupGroupId(strconv.Itoa(gid))
	if err != nil {
		return "", lookupErr("gid", strconv.Itoa(gid), err)
	}
	return g.Name, nil
}

// Groups returns the ids of the groups uid belongs to in the group
// database (its primary group among them), as initgroups(3) finds them.
func Groups(uid int) ([]int, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return nil, lookupErr("uid", strconv.Itoa(uid), err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of user %q: %w", u.Username, err)
	}
	out := make([]int, 0, len(ids))
	for _, s := range ids {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("groups of user %q: gid %q is not a number", u.Username, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// number reads a uid or gid given as a number.
func number(v string) (int, bool) {
	n, err := strconv.ParseUint(v, 10, 32)
	return int(n), err == nil
}

// lookupErr names what was looked up: `user "www": no such user`.
func lookupErr(kind, v string, err error) error {
	var uu user.UnknownUserError
	var uid user.UnknownUserIdError
	var ug user.UnknownGroupError
	var ugid user.UnknownGroupIdError
	if errors.As(err, &uu) || errors.As(err, &uid) || errors.As(err, &ug) || errors.As(err, &ugid) {
		return fmt.Errorf("%s %q: not found in the %s database", kind, v, db(kind))
	}
	return fmt.Errorf("%s %q: %w", kind, v, err)
}

// db names the database a kind of id lives in.
func db(kind string) string {
	if kind == "group" || kind == "gid" {
		return "group"
	}
	return "passwd"
}
