package compat_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// hostRun is one program run in one throwaway host, as the test saw it.
type hostRun struct {
	hostResult
	Output string // what the program wrote on stdout and stderr
	Leaked []int  // real pids of processes of the host's pid namespace still alive after it ended
}

// runInHost builds a throwaway host in dir (a real, empty directory) and runs
// spec in it. An error means the host itself could not be built or watched.
func runInHost(ctx context.Context, dir string, spec hostSpec) (hostRun, error) {
	var run hostRun
	self, err := os.Executable()
	if err != nil {
		return run, err
	}
	spec.Scratch = filepath.Join(dir, "scratch")
	if err := os.Mkdir(spec.Scratch, 0o700); err != nil {
		return run, err
	}
	specFile, err := os.Create(filepath.Join(dir, "spec.json"))
	if err != nil {
		return run, err
	}
	defer specFile.Close()
	if err := json.NewEncoder(specFile).Encode(spec); err != nil {
		return run, err
	}
	if _, err := specFile.Seek(0, 0); err != nil {
		return run, err
	}
	outPath := filepath.Join(dir, "output")
	out, err := os.Create(outPath)
	if err != nil {
		return run, err
	}
	defer out.Close()
	resR, resW, err := os.Pipe()
	if err != nil {
		return run, err
	}
	defer resR.Close()

	// Give up on a host that has not answered long after its settle time:
	// the kill of its pid 1 takes the whole namespace with it.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(spec.Settle)+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-test.run=^$")
	cmd.Env = []string{hostEnv + "=1", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = []*os.File{specFile, resW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		// If the test dies, so does the host and its namespace. Pdeathsig
		// follows the thread that started the child: keep it locked.
		Pdeathsig: syscall.SIGKILL,
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		resW.Close()
		return run, fmt.Errorf("start a host in new namespaces: %w", err)
	}
	resW.Close()
	pidns, _ := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/pid")
	decErr := json.NewDecoder(resR).Decode(&run.hostResult)
	waitErr := cmd.Wait()
	if pidns != "" {
		// The kernel kills the rest of the namespace when its pid 1 dies;
		// on a loaded machine they take a moment to go.
		run.Leaked = testkit.WaitGone(inPidNamespace(pidns))
	}
	if data, err := os.ReadFile(outPath); err == nil {
		run.Output = string(data)
	}
	if decErr != nil {
		return run, fmt.Errorf("host gave no result (%v, %v): %s", decErr, waitErr, firstLines(run.Output, 5))
	}
	if run.SetupError != "" {
		return run, fmt.Errorf("build the host: %s", run.SetupError)
	}
	return run, nil
}

// inPidNamespace lists the real pids of the processes in the pid namespace
// named ns (a readlink of /proc/PID/ns/pid) still alive.
func inPidNamespace(ns string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && l == ns {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsUnder lists the real host's mount points under dir.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir) {
			out = append(out, fields[4])
		}
	}
	return out, sc.Err()
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}
