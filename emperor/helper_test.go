package emperor_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/config"
	"github.com/emperor-dev/emperor/guardian"
	"github.com/emperor-dev/emperor/internal/emperortest"
	"github.com/emperor-dev/emperor/namespaces"
	"github.com/emperor-dev/emperor/protocol"
)

// The test binary doubles as a vassal: the Emperor under test runs it in the
// role "vassal" (see emperortest.Register) with a uWSGI-style argv (--ini
// app.ini or --ini emperor://app.ini). It reads its behaviour from its own
// config:
//
//	report       = unix datagram socket of the test, which receives reports
//	ignore-stop  = 1: ignore stop bytes (Ragnarok must SIGKILL it)
//	crash-after  = duration: exit with exit-code (default 1) after it
//	send         = bytes sent at start, space separated (default "1 5")
//	ready-after  = duration to wait before sending them
//	loyal-from-start = N, start-counter = FILE: from the N-th start on
//	(starts counted in FILE), also send 17 and ignore crash-after
//	voluntary-after = duration: send byte 22, then exit 0 when told to stop
//	heartbeat-every, heartbeat-for = durations: send byte 26 that often for
//	that long, then fall silent (and report "silent")
//	flood        = byte: after start, write it to fd 3 as fast as it can
//	storm        = N: after start, send N config requests (byte 2) without
//	reading the config fd (report "stormed"); on a reload, read frames
//	until the newest config, reporting each ("frame", or "bad-frame")
//	children     = N: after start, start N "sleep 1000" in its process group
//	(report "children", Fds holding their pids), never waiting for them;
//	with daemon = 1, one more that escapes the group with setsid (last)
//
// Reports are JSON datagrams (type report). The isolation tests' roles are
// in isolation_helper_test.go.
func TestMain(m *testing.M) {
	if namespaces.IsInit() { // the Emperor's init stage is this binary too
		namespaces.Init()
	}
	if guardian.IsGuardian() { // and the guardian of Emperors with cgroups
		guardian.Main()
	}
	emperortest.Register(roleVassal, testVassal)
	emperortest.Register(roleIsolation, isolationVassal)
	emperortest.Register(roleTyrantEmperor, isolationEmperor)
	emperortest.Register(roleFdLimitedEmperor, fdLimitedEmperor)
	emperortest.RunRole()
	os.Exit(m.Run())
}

// The roles this test binary plays.
const (
	roleVassal        = "vassal"         // testVassal
	roleIsolation     = "isolation"      // isolationVassal
	roleTyrantEmperor = "tyrant-emperor" // isolationEmperor
	// fdLimitedEmperor (fdbudget_test.go)
	roleFdLimitedEmperor = "fd-limited-emperor"
)

// report is what a test vassal tells the test.
type report struct {
	Event  string   `json:"event"` // start, byte, config, exit
	Name   string   `json:"name"`
	Pid    int      `json:"pid"`
	Byte   int      `json:"byte,omitempty"`
	Cwd    string   `json:"cwd,omitempty"`
	Argv   []string `json:"argv,omitempty"`
	Fds    []int    `json:"fds,omitempty"`
	Env    []string `json:"env,omitempty"`
	Config string   `json:"config,omitempty"`
	UID    int      `json:"uid"`
	Host   string   `json:"host,omitempty"`
}

func testVassal(args []string) int {
	fds := openFds() // first, before the runtime opens its poller
	signal.Ignore(syscall.SIGPIPE)
	var cfgFile *os.File
	if s := os.Getenv(protocol.EnvConfigFD); s != "" {
		n, _ := strconv.Atoi(s)
		cfgFile = os.NewFile(uintptr(n), "config")
	}
	var lastText string
	l := &config.Loader{Emperor: func(name string) ([]byte, error) {
		if cfgFile == nil {
			return nil, fmt.Errorf("no config fd")
		}
		b, err := protocol.ReadFrame(cfgFile)
		lastText = string(b)
		return b, err
	}}
	cfg, err := l.Args(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test vassal:", err)
		return 1
	}
	name, _ := cfg.Get("name")
	if name == "" && len(args) > 1 {
		name = args[len(args)-1]
	}
	var conn net.Conn
	if path, ok := cfg.Get("report"); ok {
		conn, err = net.Dial("unixgram", path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "test vassal: report:", err)
			return 1
		}
	}
	send := func(r report) {
		r.Name, r.Pid = name, os.Getpid()
		if conn != nil {
			b, _ := json.Marshal(r)
			conn.Write(b)
		}
	}
	cwd, _ := os.Getwd()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "UWSGI_") || strings.HasPrefix(kv, "NOTIFY_") {
			env = append(env, kv)
		}
	}
	sort.Strings(env)
	host, _ := os.Hostname()
	send(report{Event: "start", UID: os.Getuid(), Host: host, Cwd: cwd, Argv: os.Args, Fds: fds, Env: env, Config: lastText})

	fdNum, err := strconv.Atoi(os.Getenv(protocol.EnvFD))
	if err != nil {
		fmt.Fprintln(os.Stderr, "test vassal: not a vassal")
		return 1
	}
	ctl := os.NewFile(uintptr(fdNum), "emperor")
	sendBytes := "1 5"
	if s, ok := cfg.Get("send"); ok {
		sendBytes = s
	}
	loyal := false
	if s, ok := cfg.Get("loyal-from-start"); ok {
		// Count starts in a file; from the N-th on, announce loyalty.
		from, _ := strconv.Atoi(s)
		counter, _ := cfg.Get("start-counter")
		b, _ := os.ReadFile(counter)
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		n++
		os.WriteFile(counter, []byte(strconv.Itoa(n)), 0o644)
		if loyal = n >= from; loyal {
			sendBytes += " 17"
		}
	}
	if s, ok := cfg.Get("ready-after"); ok {
		d, _ := time.ParseDuration(s)
		time.Sleep(d)
	}
	for _, f := range strings.Fields(sendBytes) {
		n, _ := strconv.Atoi(f)
		ctl.Write([]byte{byte(n)})
	}
	ignoreStop, _ := cfg.Bool("ignore-stop")
	exitCode, _ := cfg.Int("exit-code", 1)
	if s, ok := cfg.Get("crash-after"); ok && !loyal {
		d, _ := time.ParseDuration(s)
		time.AfterFunc(d, func() {
			send(report{Event: "exit", Byte: exitCode})
			os.Exit(exitCode)
		})
	}
	if s, ok := cfg.Get("heartbeat-every"); ok {
		every, _ := time.ParseDuration(s)
		forS, _ := cfg.Get("heartbeat-for")
		span, _ := time.ParseDuration(forS)
		go func() {
			for end := time.Now().Add(span); time.Now().Before(end); time.Sleep(every) {
				ctl.Write([]byte{byte(protocol.Heartbeat)})
			}
			send(report{Event: "silent"})
		}()
	}
	if s, ok := cfg.Get("children"); ok {
		n, _ := strconv.Atoi(s)
		daemon, _ := cfg.Bool("daemon")
		if daemon {
			n++
		}
		var pids []int
		for i := 0; i < n; i++ {
			c := exec.Command("sleep", "1000")
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: daemon && i == n-1}
			if err := c.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "test vassal: children:", err)
				return 1
			}
			pids = append(pids, c.Process.Pid)
		}
		send(report{Event: "children", Fds: pids})
	}
	if s, ok := cfg.Get("flood"); ok {
		b, _ := strconv.Atoi(s)
		go func() {
			chunk := bytes.Repeat([]byte{byte(b)}, 65536)
			for {
				if _, err := ctl.Write(chunk); err != nil {
					return
				}
			}
		}()
	}
	storm := false
	if s, ok := cfg.Get("storm"); ok {
		n, _ := strconv.Atoi(s)
		ctl.Write(bytes.Repeat([]byte{byte(protocol.ConfigRequest)}, n))
		storm = true
		send(report{Event: "stormed"})
	}
	if s, ok := cfg.Get("voluntary-after"); ok {
		d, _ := time.ParseDuration(s)
		time.AfterFunc(d, func() { ctl.Write([]byte{byte(protocol.Voluntary)}) })
	}
	buf := make([]byte, 16)
	for {
		n, err := ctl.Read(buf)
		if err != nil || n == 0 {
			send(report{Event: "exit", Byte: 1})
			return 1
		}
		for _, b := range buf[:n] {
			send(report{Event: "byte", Byte: int(b)})
			switch protocol.Byte(b) {
			case protocol.Stop, protocol.GracefulStop:
				if !ignoreStop {
					send(report{Event: "exit"})
					return 0
				}
			case protocol.Reload:
				if storm {
					// Frames queued by the storm come first; each must
					// be whole, the last the newest config.
					ctl.Write([]byte{byte(protocol.ConfigRequest)})
					for {
						text, err := protocol.ReadFrame(cfgFile)
						if err != nil {
							send(report{Event: "bad-frame", Config: err.Error()})
							return 1
						}
						gen, err := (&config.Loader{}).Parse(config.INI, "frame.ini", text)
						if err != nil || !strings.HasPrefix(string(text), "[uwsgi]") {
							send(report{Event: "bad-frame", Config: string(text)})
							return 1
						}
						send(report{Event: "frame", Config: string(text)})
						if g, _ := gen.Get("generation"); g == "2" {
							break
						}
					}
				} else if cfgFile != nil {
					ctl.Write([]byte{byte(protocol.ConfigRequest)})
					text, err := protocol.ReadFrame(cfgFile)
					if err == nil {
						send(report{Event: "config", Config: string(text)})
					}
				}
				ctl.Write([]byte{byte(protocol.Accepting)})
			}
		}
	}
}

// openFds lists the fds this process inherited.
func openFds() []int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var fds []int
	for _, n := range names {
		fd, _ := strconv.Atoi(n)
		if fd == int(d.Fd()) {
			continue
		}
		// Inherited fds survived exec, so they are not close-on-exec; the
		// ones our own runtime opened at start are.
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	sort.Ints(fds)
	return fds
}
