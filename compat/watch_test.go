package compat_test

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// watch starts the program inside the built host and decides: started (it,
// or the daemon it left behind, is still running when the settle time is
// over) or refused (every watched process has exited).
//
// The host is pid 1, so it reaps every process of its namespace and an
// orphan comes to it. When a watched process exits with status 0 (the
// parent half of daemonize), the processes it left re-parented to pid 1
// are its daemon, and they are watched in its place. Meanwhile it looks
// for the socket of the probe vassal, if the spec has one; once the program
// counts as started, it waits up to ProbeGrace more for that socket, so a
// slow spawn on a loaded box is not read as no spawn.
func watch(spec hostSpec) hostResult {
	if len(spec.Argv) == 0 {
		return hostResult{SetupError: errNoProgram.Error()}
	}
	devnull, err := os.Open("/dev/null")
	if err != nil {
		return hostResult{SetupError: err.Error()}
	}
	pid, err := syscall.ForkExec(spec.Argv[0], spec.Argv, &syscall.ProcAttr{
		Dir:   spec.Cwd,
		Env:   spec.Env,
		Files: []uintptr{devnull.Fd(), 1, 2},
		// Like a service manager: its own session, no controlling tty.
		Sys: &syscall.SysProcAttr{Setsid: true},
	})
	devnull.Close()
	if err != nil {
		return hostResult{Status: fmt.Sprintf("exec %s: %v", spec.Argv[0], err)}
	}
	watched := map[int]bool{pid: true}
	known := map[int]bool{pid: true}
	var res hostResult
	deadline := time.Now().Add(time.Duration(spec.Settle))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for {
			var ws unix.WaitStatus
			p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err != nil || p <= 0 {
				break
			}
			if !watched[p] {
				continue
			}
			delete(watched, p)
			res.Status = describe(ws)
			if ws.Exited() && ws.ExitStatus() == 0 {
				for _, o := range orphans() {
					if !known[o] {
						known[o], watched[o] = true, true
						res.Followed = true
					}
				}
			}
		}
		if spec.Probe != "" && !res.VassalUp {
			if fi, err := os.Stat(spec.Probe); err == nil && fi.Mode()&os.ModeSocket != 0 {
				res.VassalUp = true
			}
		}
		now := time.Now()
		switch {
		case res.Started:
			// Started; only the probe vassal is awaited.
			if res.VassalUp || !now.Before(deadline) {
				res.Status = ""
				return res
			}
		case len(watched) == 0:
			res.Logs = readLogs(spec.Logs)
			return res
		case !now.Before(deadline):
			res.Started = true
			if spec.Probe == "" || res.VassalUp {
				res.Status = ""
				return res
			}
			deadline = now.Add(time.Duration(spec.ProbeGrace))
		}
		<-tick.C
	}
}

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// readLogs returns the tail of each log file the config writes to, where a
// daemonized program says why it stopped.
func readLogs(paths []string) string {
	const max = 8 << 10
	var out string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > max {
			data = data[len(data)-max:]
		}
		out += string(data)
		if out[len(out)-1] != '\n' {
			out += "\n"
		}
	}
	return out
}
