package push_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"syscall"
	"testing"

	"github.com/emperor-dev/emperor/monitor"
	"github.com/emperor-dev/emperor/monitor/journal"
	"github.com/emperor-dev/emperor/monitor/push"
)

// The test binary plays a pushing monitor when crashChildEnv names a state
// directory: see crashChild.
const (
	crashChildEnv = "PUSH_CRASH_CHILD_DIR"
	crashFromEnv  = "PUSH_CRASH_CHILD_FROM"
	crashSeedEnv  = "PUSH_CRASH_CHILD_SEED"
	// crashRunsEnv sets how many times TestDesired_Crash kills its child
	// (default 100).
	crashRunsEnv = "EMPEROR_CRASH_RUNS"
	crashID      = "zmq://crash"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// crashChange is change number i of the stream of seed: a touch with a
// config naming i (2 in 3) or a destroy, among six vassals. Parent and child
// compute the same stream.
func crashChange(seed uint64, i int) journal.Change {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	name := fmt.Sprintf("v%d.ini", r.IntN(6))
	if r.IntN(3) == 0 {
		return journal.Change{Op: monitor.Destroy, Entry: journal.Entry{Name: name}}
	}
	return journal.Change{Op: monitor.Touch, Entry: journal.Entry{Name: name, Config: []byte(fmt.Sprintf("[uwsgi]\n# change %d\n", i)), Source: "config"}}
}

// crashChild replays the journal in dir through push.Desired, then pushes
// changes from number PUSH_CRASH_CHILD_FROM on, forever, writing each
// change's number to stdout once Desired acknowledges it (Then), as a
// monitor acknowledges a message. The parent kills it.
func crashChild(dir string) int {
	from, err1 := strconv.Atoi(os.Getenv(crashFromEnv))
	seed, err2 := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "crash child: bad environment", err1, err2)
		return 2
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := push.NewDesired(crashID, crashID, dir, nil, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	out := make(chan monitor.Event)
	go func() {
		for range out {
		}
	}()
	d.Start(ctx, out, nil)
	for i := from; ; i++ {
		c := crashChange(seed, i)
		if c.Op == monitor.Touch {
			d.Touch(ctx, out, c.Entry, "crash test")
		} else {
			d.Destroy(ctx, out, c.Entry.Name, "crash test")
		}
		if d.Blocked() {
			fmt.Fprintln(os.Stderr, "crash child: the journal write failed")
			return 2
		}
		d.Then(func() { os.Stdout.WriteString(strconv.Itoa(i) + "\n") })
	}
}

// crashState is the desired state after changes [0, n) of seed: name to
// config.
func crashState(seed uint64, n int) map[string]string {
	s := map[string]string{}
	for i := range n {
		c := crashChange(seed, i)
		if c.Op == monitor.Touch {
			s[c.Entry.Name] = string(c.Entry.Config)
		} else {
			delete(s, c.Entry.Name)
		}
	}
	return s
}

// TestDesired_Crash runs a pushing monitor (the test binary, see
// crashChild) against one journal, SIGKILLs it at a random point, reopens
// the journal and compares it with what was acknowledged before the kill:
// every acknowledged change must be there, and nothing destroyed may come
// back. Only the change in flight at the kill may or may not be. Each chain
// of kills continues one journal (so replays of compacted, appended and
// torn files are crashed too); EMPEROR_CRASH_RUNS sets the number of kills.
func TestDesired_Crash(t *testing.T) {
	runs := 100
	if s := os.Getenv(crashRunsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashRunsEnv, s)
		}
		runs = n
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const chain = 10 // kills per journal
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	var mismatches, inFlightKept, torn, acked int
	var dir string
	var seed uint64
	var done int // changes the journal holds
	for run := range runs {
		if run%chain == 0 {
			dir, seed, done = t.TempDir(), rng.Uint64(), 0
		}
		killAfter := 1 + rng.IntN(40)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashFromEnv+"="+strconv.Itoa(done), crashSeedEnv+"="+strconv.FormatUint(seed, 10))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		next := done
		for sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			if err != nil || n != next {
				t.Fatalf("run %d: the child acknowledged %q, want %d", run, sc.Text(), next)
			}
			next++
			if next-done == killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("run %d: the child ended by itself (%v) after %d changes; stderr:\n%s", run, err, next-done, stderr.String())
		}
		acked += next - done

		j, err := journal.Open(dir, crashID, crashID)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := j.Load()
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if rec.Damage != nil {
			torn++
		}
		got := map[string]string{}
		for _, e := range rec.Entries {
			got[e.Name] = string(e.Config)
		}
		switch {
		case reflect.DeepEqual(got, crashState(seed, next)):
			done = next
		case reflect.DeepEqual(got, crashState(seed, next+1)):
			done = next + 1
			inFlightKept++
		default:
			mismatches++
			t.Errorf("run %d: after %d acknowledged changes the journal holds %v, want %v (damage %v)",
				run, next, got, crashState(seed, next), rec.Damage)
			done = 0
			dir = t.TempDir()
		}
	}
	t.Logf("%d kills, %d changes acknowledged, %d mismatches; the change in flight was kept %d times; %d journals had a torn end",
		runs, acked, mismatches, inFlightKept, torn)
}
