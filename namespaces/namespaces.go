// Package namespaces turns uWSGI's emperor-use-clone lists ("fs,net,pid")
// into clone flags and the uid/gid maps a user namespace needs.
package namespaces

import (
	"fmt"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Set is a set of namespaces to create for a vassal, as clone flags.
type Set uintptr

// names maps uWSGI's namespace names (those of its --unshare and
// emperor-use-clone lists, plus the kernel's) to clone flags, in the order
// String prints them. sysvsem and io are not namespaces but clone flags
// uWSGI passes as well; Go's clone honours them.
var names = []struct {
	name    string
	aliases []string
	flag    uintptr
}{
	{"fs", []string{"mnt", "mount", "ns"}, unix.CLONE_NEWNS},
	{"net", nil, unix.CLONE_NEWNET},
	{"ipc", nil, unix.CLONE_NEWIPC},
	{"pid", nil, unix.CLONE_NEWPID},
	{"uts", nil, unix.CLONE_NEWUTS},
	{"user", nil, unix.CLONE_NEWUSER},
	{"cgroup", nil, unix.CLONE_NEWCGROUP},
	{"sysvsem", nil, unix.CLONE_SYSVSEM},
	{"io", nil, unix.CLONE_IO},
}

// refused are names uWSGI accepts that would take the vassal out of the
// Emperor's hands, with why.
var refused = map[string]string{
	"files":  "CLONE_FILES would share the Emperor's file descriptor table with the vassal until its exec",
	"parent": "CLONE_PARENT would make the vassal a child of the Emperor's parent, which the Emperor cannot wait for",
}

// Parse reads a list such as "fs,net,ipc,pid,uts,user" (commas or spaces),
// with uWSGI's names (mount, mnt and ns are fs; sysvsem and io are clone
// flags). An unknown name is an error naming it and the known ones; files
// and parent, which uWSGI accepts, are refused with the reason.
func Parse(list string) (Set, error) {
	var s Set
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if why, ok := refused[f]; ok {
			return 0, fmt.Errorf("%q is refused: %s", f, why)
		}
		found := false
		for _, n := range names {
			if f == n.name || slices.Contains(n.aliases, f) {
				s |= Set(n.flag)
				found = true
				break
			}
		}
		if !found {
			known := make([]string, len(names))
			for i, n := range names {
				known[i] = n.name
			}
			return 0, fmt.Errorf("unknown namespace %q (known: %s; mount, mnt and ns are fs)", f, strings.Join(known, ", "))
		}
	}
	return s, nil
}

// Has reports whether s includes the namespace of clone flag f.
func (s Set) Has(f uintptr) bool { return uintptr(s)&f != 0 }

// String lists the namespaces by uWSGI name, comma separated.
func (s Set) String() string {
	var out []string
	for _, n := range names {
		if s.Has(n.flag) {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, ",")
}

// Apply sets the clone flags of s on attr. With a user namespace it maps
// the vassal's root to hostUID/hostGID, the ids the vassal has outside, so
// that root inside is an unprivileged user outside (uWSGI writes no maps, so
// its setuid(0) in the child fails: bug B40). setgroups is denied in the
// namespace, as the kernel requires of an unprivileged mapper. Call it after
// setting attr.Credential (an unset one becomes root of the namespace).
func (s Set) Apply(attr *syscall.SysProcAttr, hostUID, hostGID int) {
	attr.Cloneflags |= uintptr(s)
	if s.Has(unix.CLONE_NEWUSER) {
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostUID, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostGID, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
		if attr.Credential == nil {
			// Become the namespace's root once the maps are written: the
			// child is otherwise still the Emperor's (unmapped) uid, and
			// would lose every capability at exec.
			attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
		}
	}
}
