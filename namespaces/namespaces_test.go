package namespaces

import (
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	s, err := Parse("fs,net ipc,pid,uts,user")
	if err != nil {
		t.Fatal(err)
	}
	want := Set(unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWUSER)
	if s != want {
		t.Errorf("Parse = %#x, want %#x", s, want)
	}
	if s.String() != "fs,net,ipc,pid,uts,user" {
		t.Errorf("String = %q", s.String())
	}
	if s, _ := Parse(""); s != 0 {
		t.Errorf("empty list = %#x", s)
	}
	if _, err := Parse("fs,time"); err == nil || !strings.Contains(err.Error(), `"time"`) {
		t.Errorf("unknown name: err = %v", err)
	}
}

func TestApplyMapsRootOnlyWithUser(t *testing.T) {
	var a syscall.SysProcAttr
	s, _ := Parse("pid,uts")
	s.Apply(&a, 1000, 1000)
	if a.Cloneflags != unix.CLONE_NEWPID|unix.CLONE_NEWUTS || a.UidMappings != nil {
		t.Errorf("without user: %+v", a)
	}
	s, _ = Parse("user")
	s.Apply(&a, 1000, 1001)
	if len(a.UidMappings) != 1 || a.UidMappings[0].HostID != 1000 || a.GidMappings[0].HostID != 1001 || a.UidMappings[0].ContainerID != 0 {
		t.Errorf("with user: %+v", a)
	}
}

// emperor-use-clone takes uWSGI's names: those of its --unshare list.
func TestParseUWSGINames(t *testing.T) {
	for _, c := range []struct {
		list string
		want uintptr
	}{
		{"mount", unix.CLONE_NEWNS},
		{"ns,mnt", unix.CLONE_NEWNS},
		{"fs,pid,ipc,uts,net", unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET},
		{"sysvsem,io", unix.CLONE_SYSVSEM | unix.CLONE_IO},
		{"user", unix.CLONE_NEWUSER},
	} {
		s, err := Parse(c.list)
		if err != nil || uintptr(s) != c.want {
			t.Errorf("Parse(%q) = %#x, %v; want %#x", c.list, s, err, c.want)
		}
	}
	if s, _ := Parse("mount,sysvsem"); s.String() != "fs,sysvsem" {
		t.Errorf("String = %q", s.String())
	}
	for _, name := range []string{"files", "parent"} {
		if _, err := Parse("fs," + name); err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "CLONE_") {
			t.Errorf("Parse(%q): %v, want a refusal saying why", name, err)
		}
	}
}
