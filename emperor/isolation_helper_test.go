package emperor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/internal/testenv"
	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/protocol"
)

// isoReport is what an isolation vassal sees of itself.
type isoReport struct {
	Name     string   `json:"name"`
	Pid      int      `json:"pid"`
	UID      int      `json:"uid"`
	GID      int      `json:"gid"`
	Groups   []int    `json:"groups"`
	Hostname string   `json:"hostname"`
	CapEff   string   `json:"cap_eff"`
	CapBnd   string   `json:"cap_bnd"`
	CapAmb   string   `json:"cap_amb"`
	CapPrm   string   `json:"cap_prm"`
	Links    []string `json:"links"`
	Procs    int      `json:"procs"` // pids visible in /proc
	Cgroup   string   `json:"cgroup"`
	Setuid0  string   `json:"setuid0"`  // error of setuid(0), "" if it worked
	Chown    string   `json:"chown"`    // error of chowning a file to another user
	Mounted  string   `json:"mounted"`  // error of the tmpfs mount asked for
	Daemon   int      `json:"daemon"`   // pid of the daemon it started
	Hook     string   `json:"hook"`     // what exec-as-vassal left in the hook file
	Fds      []int    `json:"fds"`      // fds inherited across exec
	Escape   string   `json:"escape"`   // errors of moving itself to the root cgroups
	Read     string   `json:"read"`     // error of reading the file "read" names
	Loopback string   `json:"loopback"` // error of connecting to itself on 127.0.0.1
}

// isolationVassal reads its config (iso-report = socket, mount-tmpfs =
// dir, daemon = 1, alloc = MiB, hook-file = path), reports what it sees,
// then speaks the protocol until told to stop.
func isolationVassal(args []string) int {
	fds := openFds() // first, before the runtime opens its own
	// Inline configs come over the config channel.
	l := &config.Loader{Emperor: func(string) ([]byte, error) {
		fd, err := strconv.Atoi(os.Getenv(protocol.EnvConfigFD))
		if err != nil {
			return nil, err
		}
		return protocol.ReadFrame(os.NewFile(uintptr(fd), "config"))
	}}
	cfg, err := l.Args(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "isolation vassal:", err)
		return 1
	}
	name, _ := cfg.Get("name")
	r := isoReport{Name: name, Pid: os.Getpid(), UID: os.Getuid(), GID: os.Getgid(), Fds: fds}
	r.Groups, _ = os.Getgroups()
	sort.Ints(r.Groups)
	r.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "CapEff":
				r.CapEff = v
			case "CapBnd":
				r.CapBnd = v
			case "CapAmb":
				r.CapAmb = v
			case "CapPrm":
				r.CapPrm = v
			}
		}
	}
	// /proc/self/net/dev lists the links of this process's network
	// namespace (/sys/class/net shows the one sysfs was mounted in).
	if b, err := os.ReadFile("/proc/self/net/dev"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, _, ok := strings.Cut(line, ":"); ok && !strings.Contains(name, "|") {
				r.Links = append(r.Links, strings.TrimSpace(name))
			}
		}
		sort.Strings(r.Links)
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				r.Procs++
			}
		}
	}
	b, _ := os.ReadFile("/proc/self/cgroup")
	r.Cgroup = string(b)
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err != nil {
		r.Loopback = err.Error()
	} else {
		c, err := net.DialTimeout("tcp", l.Addr().String(), 2*time.Second)
		r.Loopback = errString(err)
		if c != nil {
			c.Close()
		}
		l.Close()
	}
	if dir, ok := cfg.Get("mount-tmpfs"); ok {
		r.Mounted = errString(unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"))
	}
	if f, ok := cfg.Get("hook-file"); ok {
		b, _ := os.ReadFile(f)
		r.Hook = strings.TrimSpace(string(b))
	}
	// Try to become root, and to use CAP_CHOWN, from a throwaway thread:
	// setuid applies to every thread in Go, so use the raw syscall.
	_, _, e1 := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)
	if e1 != 0 {
		r.Setuid0 = e1.Error()
	} else if os.Getuid() != 0 || r.UID != 0 {
		r.Setuid0 = "" // it worked: a vassal that could become root
	}
	if f, err := os.CreateTemp("", "chown-"); err == nil {
		r.Chown = errString(os.Chown(f.Name(), 12345, 12345))
		f.Close()
		os.Remove(f.Name())
	}
	if _, ok := cfg.Get("daemon"); ok {
		// A double fork: the shell exits at once, its sleep lives on in a
		// session of its own, reparented away from the vassal.
		out, err := exec.Command("/bin/sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 & echo $!").Output()
		if err == nil {
			r.Daemon, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		}
	}
	if f, ok := cfg.Get("read"); ok {
		_, err := os.ReadFile(f)
		r.Read = errString(err)
	}
	if _, ok := cfg.Get("escape"); ok {
		// Try to leave its cgroup for the root ones.
		var errs []string
		for _, f := range []string{"/sys/fs/cgroup/unified/cgroup.procs", "/sys/fs/cgroup/memory/cgroup.procs", "/sys/fs/cgroup/cgroup.procs"} {
			if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err.Error())
			} else if err == nil {
				errs = append(errs, "") // escaped
			}
		}
		r.Escape = strings.Join(errs, "; ")
		b, _ := os.ReadFile("/proc/self/cgroup")
		r.Cgroup = string(b)
	}
	if path, ok := cfg.Get("iso-report"); ok {
		if c, err := net.Dial("unixgram", path); err == nil {
			b, _ := json.Marshal(r)
			c.Write(b)
			c.Close()
		}
	}
	fd, err := strconv.Atoi(os.Getenv(protocol.EnvFD))
	if err != nil {
		return 1
	}
	ctl := os.NewFile(uintptr(fd), "emperor")
	ctl.Write([]byte{byte(protocol.Spawned), byte(protocol.Accepting)})
	if _, ok := cfg.Get("exit"); ok {
		return 3 // leaves its daemon behind, as a careless program would
	}
	if mb, err := cfg.Int("alloc", 0); err == nil && mb > 0 {
		var hog [][]byte
		for i := 0; i < mb; i++ {
			chunk := make([]byte, 1<<20)
			for j := range chunk {
				chunk[j] = byte(j) // touch every page
			}
			hog = append(hog, chunk)
		}
		fmt.Fprintln(os.Stderr, "isolation vassal: allocated", len(hog), "MiB")
	}
	buf := make([]byte, 16)
	for {
		n, err := ctl.Read(buf)
		if err != nil || n == 0 {
			return 1
		}
		for _, b := range buf[:n] {
			if protocol.Byte(b) == protocol.Stop || protocol.Byte(b) == protocol.GracefulStop {
				return 0
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// isolationEmperor runs an Emperor in tyrant mode over the directory
// args[0], with this binary as its vassals, until SIGTERM.
func isolationEmperor(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	m, err := monitor.Open(args[0], monitor.Options{Freq: time.Second, Logger: log})
	if err != nil {
		log.Error("monitor", "err", err)
		return 1
	}
	exe, _ := os.Executable()
	sigs := make(chan os.Signal, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		<-c
		cancel()
	}()
	em, err := emperor.New(emperor.Options{
		Monitors: []monitor.Monitor{m}, Binary: exe, Tyrant: true, TyrantInitgroups: true,
		Env: emperortest.RoleEnviron(roleIsolation), Logger: log, Signals: sigs,
		ReloadMercy: 5 * time.Second,
	})
	if err != nil {
		log.Error("emperor", "err", err)
		return 1
	}
	if err := em.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

// tenantDirs makes a public directory with a copy of the test binary, a
// vassals directory in it, and a socket receiving isolation reports.
func tenantDirs(t *testing.T) (pub, binary, vassals, report string, reports isoInbox) {
	t.Helper()
	testenv.Root(t)
	pub, binary = publicDir(t)
	vassals = filepath.Join(pub, "vassals")
	os.Mkdir(vassals, 0o755)
	report, in := emperortest.ListenJSON[isoReport](t, pub, "iso.sock")
	return pub, binary, vassals, report, isoInbox{in}
}

// isoInbox holds the isolation vassals' reports.
type isoInbox struct{ *emperortest.Inbox[isoReport] }

func (b isoInbox) wait(t *testing.T, name string) isoReport {
	t.Helper()
	return b.Wait(t, "a report from isolation vassal "+name, func(r isoReport) bool { return r.Name == name })
}

// gone reports whether pid is dead or a zombie.
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}
