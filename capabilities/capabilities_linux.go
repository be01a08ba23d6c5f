package capabilities

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// DropBounding removes every capability not in keep from the calling
// thread's bounding set, so no exec (of a setuid binary or one with file
// capabilities) can grant it again. It needs CAP_SETPCAP, which is dropped
// last unless kept (uWSGI always keeps it: its bug B36).
func DropBounding(keep Set) error {
	last := LastCap()
	for c := 0; c <= last; c++ {
		if keep.Has(c) || c == 8 { // CAP_SETPCAP: needed to drop the others
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return os.NewSyscallError("prctl(PR_CAPBSET_DROP "+strconv.Itoa(c)+")", err)
		}
	}
	if !keep.Has(8) {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, 8, 0, 0, 0); err != nil && err != unix.EINVAL {
			return os.NewSyscallError("prctl(PR_CAPBSET_DROP setpcap)", err)
		}
	}
	return nil
}

// Limit sets the calling thread's permitted, effective and inheritable
// sets to keep (intersected with what it holds) and raises keep in the
// ambient set, so the capabilities survive exec of an ordinary binary by a
// non-root user; ambient is cleared first, so nothing else survives.
func Limit(keep Set) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return os.NewSyscallError("capget", err)
	}
	keep &= Set(cur[0].Permitted) | Set(cur[1].Permitted)<<32
	if err := Hold(keep); err != nil {
		return err
	}
	return Ambient(keep)
}

// Hold makes s the calling thread's permitted, effective and inheritable
// sets; raising one it does not hold fails with EPERM.
func Hold(s Set) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(s), Permitted: uint32(s), Inheritable: uint32(s)},
		{Effective: uint32(s >> 32), Permitted: uint32(s >> 32), Inheritable: uint32(s >> 32)},
	}
	return os.NewSyscallError("capset", unix.Capset(&hdr, &data[0]))
}

// Ambient makes the calling thread's ambient set exactly keep (each must be
// permitted and inheritable already).
func Ambient(keep Set) error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return os.NewSyscallError("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", err)
	}
	for _, c := range keep.List() {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return os.NewSyscallError("prctl(PR_CAP_AMBIENT_RAISE "+Set(1<<c).String()+")", err)
		}
	}
	return nil
}
