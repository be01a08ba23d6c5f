package compat_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The throwaway host: the test binary re-executes itself with hostEnv set,
// in fresh mount, pid, network, UTS and IPC namespaces. As pid 1 of its pid
// namespace it builds a root file system (an overlay whose lower layer is the
// real / and whose upper layer lives on a tmpfs of its own), pivots into it,
// starts the program under test and watches it. When it exits, the kernel
// kills whatever is left in the pid namespace and the mount namespace, with
// the overlay and every tmpfs, goes with it: nothing reaches the real host.

// hostEnv marks the re-executed test binary as a throwaway host.
const hostEnv = "EMPEROR_COMPAT_HOST"

// binMount is where the directory holding our emperor and vassal appears
// inside the host.
const binMount = "/opt/compat-emperor"

// hostSpec is everything the host needs: what to build and what to run.
type hostSpec struct {
	Scratch string     // real directory the host mounts its private tmpfs on
	BinDir  string     // real directory bind-mounted read-only at binMount
	Users   []hostUser // added to /etc/passwd and /etc/group when absent
	Dirs    []hostDir
	Files   []hostFile
	Argv    []string // Argv[0] is the program's path inside the host
	Env     []string
	Cwd     string
	Settle  int64    // nanoseconds the program must survive to count as started
	Logs    []string // files inside the host whose text explains a refusal
	// Probe is the socket a probe vassal binds (see probeVassal): its
	// appearance means the Emperor found the vassal and spawned it.
	Probe      string `json:",omitempty"`
	ProbeGrace int64  // nanoseconds to wait for it after the settle time
}

// hostUser is one account the configs name (uid = gid, same name).
type hostUser struct {
	Name string
	ID   int
}

// hostDir is a directory to create, with its owner and mode.
type hostDir struct {
	Path     string
	UID, GID int
	Mode     uint32 // permission bits, sticky bit included
}

// hostFile is a file to create with its contents and owner.
type hostFile struct {
	Path     string
	Data     string
	Mode     os.FileMode
	UID, GID int
}

// hostResult is what the host reports back on fd 4.
type hostResult struct {
	SetupError string `json:",omitempty"` // the host could not be built
	Started    bool   // the program (or its daemon) outlived the settle time
	Followed   bool   // the program exited 0 leaving a daemon that was followed
	Status     string `json:",omitempty"` // how the last watched process ended
	VassalUp   bool   // the probe vassal's socket appeared
	Logs       string `json:",omitempty"` // the text of spec.Logs after a refusal
}

// hostMain is the body of the re-executed test binary.
func hostMain() int {
	specFile := os.NewFile(3, "spec")
	resFile := os.NewFile(4, "result")
	var spec hostSpec
	var res hostResult
	if err := json.NewDecoder(specFile).Decode(&spec); err != nil {
		res.SetupError = "read spec: " + err.Error()
	} else if err := buildHost(spec); err != nil {
		res.SetupError = err.Error()
	} else {
		res = watch(spec)
	}
	if err := json.NewEncoder(resFile).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "compat host: write result:", err)
		return 1
	}
	return 0
}

// buildHost turns this process's fresh namespaces into the host the config
// expects, then pivots into it.
func buildHost(spec hostSpec) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount("tmpfs", spec.Scratch, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs on %s: %w", spec.Scratch, err)
	}
	upper, work, root := filepath.Join(spec.Scratch, "upper"), filepath.Join(spec.Scratch, "work"), filepath.Join(spec.Scratch, "root")
	for _, d := range []string{upper, work, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	opts := "lowerdir=/,upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay of / on %s: %w", root, err)
	}
	steps := []struct {
		what string
		do   func(root string) error
	}{
		{"fresh /tmp and /run", freshTmp},
		{"/dev", buildDev},
		{"our binaries", func(r string) error { return bindReadOnly(spec.BinDir, filepath.Join(r, binMount)) }},
		{"users", func(r string) error { return addUsers(r, spec.Users) }},
		{"config paths", func(r string) error { return layOut(r, spec) }},
		{"pivot_root", pivot},
		{"/proc and /sys", mountKernelFS},
	}
	for _, s := range steps {
		if err := s.do(root); err != nil {
			return fmt.Errorf("host %s: %w", s.what, err)
		}
	}
	if err := unix.Sethostname([]byte("corpus-host")); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	if err := os.Chdir(spec.Cwd); err != nil {
		return fmt.Errorf("chdir to the config's working directory: %w", err)
	}
	return nil
}

func freshTmp(root string) error {
	for _, m := range []struct {
		path, opts string
	}{{"tmp", "mode=1777"}, {"run", "mode=0755"}} {
		if err := unix.Mount("tmpfs", filepath.Join(root, m.path), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, m.opts); err != nil {
			return fmt.Errorf("tmpfs on /%s: %w", m.path, err)
		}
	}
	lock := filepath.Join(root, "run", "lock")
	if err := os.Mkdir(lock, 0o755); err != nil {
		return err
	}
	return unix.Chmod(lock, 0o1777)
}

// buildDev gives the host a /dev of its own: a tmpfs with the few device
// nodes programs open (bind-mounted from the real /dev) and a private shm.
func buildDev(root string) error {
	dev := filepath.Join(root, "dev")
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return err
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(dev, n)
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+n, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", n, err)
		}
	}
	links := map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o755); err != nil {
		return err
	}
	return unix.Mount("tmpfs", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
}

func bindReadOnly(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
}

// addUsers appends each account (and its group) that /etc does not name yet.
func addUsers(root string, users []hostUser) error {
	for _, f := range []struct {
		file string
		line func(hostUser) string
	}{
		{"etc/passwd", func(u hostUser) string {
			return fmt.Sprintf("%s:x:%d:%d::/nonexistent:/usr/sbin/nologin", u.Name, u.ID, u.ID)
		}},
		{"etc/group", func(u hostUser) string { return fmt.Sprintf("%s:x:%d:", u.Name, u.ID) }},
	} {
		path := filepath.Join(root, f.file)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(data)
		for _, u := range users {
			if strings.HasPrefix(text, u.Name+":") || strings.Contains(text, "\n"+u.Name+":") {
				continue
			}
			if text != "" && !strings.HasSuffix(text, "\n") {
				text += "\n"
			}
			text += f.line(u) + "\n"
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// layOut creates the directories and files the config expects.
func layOut(root string, spec hostSpec) error {
	for _, d := range spec.Dirs {
		p := filepath.Join(root, d.Path)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := os.Chown(p, d.UID, d.GID); err != nil {
			return err
		}
		if err := unix.Chmod(p, d.Mode); err != nil {
			return err
		}
	}
	for _, f := range spec.Files {
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.Data), f.Mode); err != nil {
			return err
		}
		if err := os.Chown(p, f.UID, f.GID); err != nil {
			return err
		}
	}
	return nil
}

func pivot(root string) error {
	old := filepath.Join(root, ".oldroot")
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(root, old); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.oldroot", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the real root: %w", err)
	}
	return os.Remove("/.oldroot")
}

// mountKernelFS mounts this pid namespace's /proc, with /proc/sys read-only
// (global sysctls must not change on the real host), and a read-only /sys.
func mountKernelFS(string) error {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("proc", "/proc", "proc", flags, ""); err != nil {
		return fmt.Errorf("proc: %w", err)
	}
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger"} {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue // not every kernel has it
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
		if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|flags, ""); err != nil {
			return fmt.Errorf("%s read-only: %w", p, err)
		}
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", flags|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("sysfs: %w", err)
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// parentOf reads a process's parent pid from /proc (0 when it is gone).
func parentOf(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// orphans lists the processes that were re-parented to this host's pid 1.
func orphans() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		if parentOf(pid) == 1 {
			out = append(out, pid)
		}
	}
	return out
}

var errNoProgram = errors.New("no program to run")
