package vassal

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/protocol"
)

// ListenExecArg is the hidden first argument that turns the vassal binary
// into the last step of a worker spawn (see ListenExec). A main package
// must check for it before anything else.
const ListenExecArg = "__listen-exec"

// ListenExec is the hidden mode of the vassal binary: args is the worker
// command. It runs in the freshly spawned worker process, whose pid it now
// knows, so it sets LISTEN_PID to it as the systemd socket-passing
// convention requires, and replaces itself with /bin/sh -c command (see
// shellCommand: a simple command is exec'd by the shell, so the program
// keeps the pid LISTEN_PID names). The sockets (fds 3 and up), LISTEN_FDS
// and LISTEN_FDNAMES were set up by the vassal. It never returns: if the
// exec fails it reports to stderr and exits 127, as a shell does for a
// command it cannot run.
func ListenExec(args []string) {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "vassal %s: want exactly one command, got %d arguments\n", ListenExecArg, len(args))
		os.Exit(127)
	}
	if err := os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid())); err != nil {
		fmt.Fprintf(os.Stderr, "vassal %s: %v\n", ListenExecArg, err)
		os.Exit(127)
	}
	if prefix, ok := os.LookupEnv(procnameEnv); ok {
		os.Unsetenv(procnameEnv)
		if argv := plainCommand(args[0]); argv != nil {
			// Exec the program itself, so its argv[0] can carry the
			// prefix (a shell cannot set argv[0] portably).
			if path, err := exec.LookPath(argv[0]); err == nil {
				argv[0] = prefix + argv[0]
				err = syscall.Exec(path, argv, os.Environ())
				fmt.Fprintf(os.Stderr, "vassal %s: exec %s: %v\n", ListenExecArg, path, err)
				os.Exit(127)
			}
		}
	}
	err := syscall.Exec("/bin/sh", []string{"/bin/sh", "-c", shellCommand(args[0])}, os.Environ())
	fmt.Fprintf(os.Stderr, "vassal %s: exec /bin/sh: %v\n", ListenExecArg, err)
	os.Exit(127)
}

// procnameEnv passes procname-prefix to ListenExec.
const procnameEnv = "VASSAL_PROCNAME_PREFIX"

// plainCommand splits a command made only of words without any shell
// syntax (quotes, variables, globs, redirections, operators), or returns
// nil: such a command means the same exec'd directly as run by /bin/sh.
func plainCommand(command string) []string {
	f := strings.Fields(command)
	if len(f) == 0 || strings.Contains(f[0], "=") {
		return nil
	}
	for _, r := range command {
		ok := r == ' ' || r == '\t' || r == '_' || r == '.' || r == '/' || r == '-' || r == '+' || r == ',' || r == ':' || r == '@' || r == '%' || r == '=' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return nil
		}
	}
	switch f[0] {
	case "exec", "if", "for", "while", "until", "case", "function", "{", "!":
		return nil
	}
	return f
}

// shellCommand returns the script /bin/sh -c runs for a worker-exec command.
// A simple command ("prog arg...", redirections allowed) gets an "exec "
// prefix, so the program replaces the shell and keeps the pid that
// LISTEN_PID names: some shells (dash) fork even for a single command. A
// command with ; & | or a newline (quoted or not; the redirections >& and
// <& are fine), one starting with a variable assignment, a reserved word, a
// subshell or a group, or already with exec, is left as written; its
// program receives the sockets but its pid is not LISTEN_PID unless the
// command execs it ("cd app && exec ./server").
func shellCommand(command string) string {
	c := strings.TrimSpace(command)
	unredirected := strings.NewReplacer(">&", "", "<&", "").Replace(c)
	if c == "" || strings.ContainsAny(unredirected, ";&|\n") {
		return command
	}
	first, _, _ := strings.Cut(c, " ")
	first, _, _ = strings.Cut(first, "\t")
	switch first {
	case "exec", "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done",
		"case", "esac", "in", "function", "!", "{", "}", "[[", "]]":
		return command
	}
	if strings.ContainsAny(first[:1], "({") || strings.Contains(first, "=") {
		return command
	}
	return "exec " + c
}

// workerSpec is one worker process to start: everything that turns into
// the exec.Cmd, fixed when its generation starts.
type workerSpec struct {
	self    string     // path of the vassal binary, run in ListenExecArg mode
	command string     // worker-exec
	dir     string     // chdir
	env     []string   // full environment, LISTEN_* included but LISTEN_PID
	files   []*os.File // listening sockets, become fds 3, 4, ...
	caps    []uintptr  // ambient capabilities (cap)
	prefix  string     // procname-prefix
	stdout  io.Writer
	stderr  io.Writer
}

// workerEnv builds a worker's environment: the vassal's own, without the
// Emperor protocol's variables (a worker is not a vassal) and stale LISTEN_*
// ones, then the env options, then the socket-passing variables and, when
// notify is not "", NOTIFY_SOCKET.
func workerEnv(base, extra []string, sockets []*listener, notify string) []string {
	env := make([]string, 0, len(base)+len(extra)+3)
	drop := []string{protocol.EnvFD + "=", protocol.EnvConfigFD + "=", "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", notifyEnv + "="}
next:
	for _, kv := range base {
		for _, p := range drop {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	env = append(env, extra...)
	if len(sockets) > 0 {
		names := make([]string, len(sockets))
		for i, s := range sockets {
			names[i] = s.spec.Kind.String()
		}
		env = append(env, "LISTEN_FDS="+strconv.Itoa(len(sockets)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	}
	if notify != "" {
		env = append(env, notifyEnv+"="+notify)
	}
	return env
}

// cmd turns the spec into a fresh exec.Cmd (an exec.Cmd runs once): the
// vassal binary in ListenExecArg mode, stdin on /dev/null, its own process
// group (so a stop reaches whatever the command forks), and SIGKILL when the
// thread that spawned it dies.
func (s *workerSpec) cmd(stderr *os.File) *exec.Cmd {
	env := s.env
	if s.prefix != "" {
		env = append(slices.Clip(env), procnameEnv+"="+s.prefix)
	}
	cmd := &exec.Cmd{
		Path:       s.self,
		Args:       []string{"vassal-worker", ListenExecArg, s.command},
		Env:        env,
		Dir:        s.dir,
		ExtraFiles: s.files,
		Stdout:     s.stdout,
		Stderr:     stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:     true,
			Pdeathsig:   syscall.SIGKILL,
			AmbientCaps: s.caps,
		},
		// Output copying (when Stdout or Stderr is not a file) must not
		// outlive the worker: a daemonized grandchild may hold the pipe.
		WaitDelay: time.Second,
	}
	return cmd
}

// spawnRequest asks the spawner thread to start one worker.
type spawnRequest struct {
	spec   *workerSpec
	stderr *os.File // the worker's stderr: the write end of its tap
	// prepared, when not nil, is started as is instead of spec (daemons).
	prepared *exec.Cmd
	// run, when not nil, is run on the spawner thread instead (see
	// onSpawner); its error is the reply's.
	run   func() error
	reply chan spawnReply
}

// spawnReply is the spawner's answer.
type spawnReply struct {
	cmd *exec.Cmd
	err error
}

// spawner starts every worker from one goroutine locked to its OS thread.
// Pdeathsig fires when the thread that forked a child dies, so this thread
// must outlive every worker: the goroutine returns (and its thread dies)
// only when reqs is closed, at the end of Run, after the last worker has
// been reaped.
func spawner(reqs <-chan spawnRequest, orphans *orphanReaper) {
	runtime.LockOSThread()
	// Never unlocked: when this goroutine returns, the thread exits.
	for r := range reqs {
		if r.run != nil {
			r.reply <- spawnReply{err: r.run()}
			continue
		}
		cmd := r.prepared
		if cmd == nil {
			cmd = r.spec.cmd(r.stderr)
		}
		err := orphans.start(cmd)
		r.reply <- spawnReply{cmd: cmd, err: err}
	}
}
