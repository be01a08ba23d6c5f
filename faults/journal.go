package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-zeromq/zmq4"
)

// The push journal (zmq://, emperor-state-dir): what was pushed and
// acknowledged must come back after a restart, whatever happened to the
// disk under it.
func init() {
	register(Scenario{
		Order: 60, Name: "journal-full",
		Fault: "push journal's file system full (64 KiB tmpfs filled) while vassals are pushed over zmq://, then freed; Emperor restarted",
		Hold:  "desired state lost 0 (what was acknowledged comes back after the restart); nothing acknowledged while unwritable",
		Run:   runJournalFull,
	})
	register(Scenario{
		Order: 61, Name: "journal-corrupt",
		Fault: "one record of the push journal with flipped bytes (N vassals pushed over zmq://, Emperor stopped, file damaged, restarted)",
		Hold:  "only that record lost (N-1 back), the damaged file kept aside, one clear log line",
		Run:   runJournalCorrupt,
	})
}

// zmqPusher is a PUSH socket connected to the Emperor's zmq:// monitor.
type zmqPusher struct{ sock zmq4.Socket }

func newZmqPusher(env *Env, endpoint string) (*zmqPusher, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := zmq4.NewPush(ctx, zmq4.WithDialerRetry(100*time.Millisecond), zmq4.WithDialerMaxRetries(100), zmq4.WithTimeout(5*time.Second))
	if err := s.Dial(endpoint); err != nil {
		cancel()
		return nil, err
	}
	env.Cleanup(func() { s.Close(); cancel() })
	return &zmqPusher{sock: s}, nil
}

// push sends one multipart command, giving up after 10 s.
func (p *zmqPusher) push(parts ...string) error {
	done := make(chan error, 1)
	go func() { done <- p.sock.Send(zmq4.NewMsgFromString(parts)) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("zmq send did not complete within 10 s")
	}
}

// startZmqEmperor starts an Emperor with a zmq:// monitor journaling into
// stateDir and waits until it listens.
func startZmqEmperor(ctx context.Context, env *Env, endpoint, stateDir string) (*Emperor, error) {
	em, err := env.StartEmperor("--emperor", "zmq://"+endpoint, "--emperor-state-dir", stateDir, "--binary-path", env.Vassal)
	if err != nil {
		return nil, err
	}
	if _, err := em.WaitLog(ctx, 0, "msg=listening"); err != nil {
		return nil, err
	}
	return em, nil
}

// pushLog is what the push monitor acknowledged in a log from offset on:
// the desired set after applying its push touch/destroy lines in order,
// and the names of the replayed ones (reason "journal replay").
func pushLog(log string, from int64) (desired map[string]bool, replayed []string, acks int) {
	desired = map[string]bool{}
	eachLine(log, from, func(l string) bool {
		switch {
		case strings.Contains(l, `msg="push touch"`):
			n := Field(l, "vassal")
			desired[n] = true
			if strings.Contains(l, `reason="journal replay"`) {
				replayed = append(replayed, n)
			} else {
				acks++
			}
		case strings.Contains(l, `msg="push destroy"`):
			delete(desired, Field(l, "vassal"))
			acks++
		}
		return true
	})
	sort.Strings(replayed)
	return desired, replayed, acks
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// setDiff lists what is in a and not in b.
func setDiff(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

// pushVassals pushes touch commands for names, each a hello vassal on a
// free port, its config padded with pad bytes of comments.
func pushVassals(env *Env, p *zmqPusher, pad int, names ...string) error {
	for _, n := range names {
		port, err := FreePort()
		if err != nil {
			return err
		}
		conf := vassalINI(env, port)
		for pad > 0 {
			l := "; " + strings.Repeat("padding ", 12) + "\n"
			conf += l
			pad -= len(l)
		}
		if err := p.push("touch", n, conf); err != nil {
			return err
		}
	}
	return nil
}

func waitRunning(ctx context.Context, em *Emperor, from int64, names ...string) error {
	for _, n := range names {
		if _, err := em.WaitLog(ctx, from, `msg="vassal running"`, "vassal="+n+" "); err != nil {
			return err
		}
	}
	return nil
}

func vassalNames(prefix string, from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf("%s%d.ini", prefix, i))
	}
	return out
}

func runJournalFull(ctx context.Context, env *Env) (Result, error) {
	if os.Geteuid() != 0 {
		return Result{}, fmt.Errorf("%w: mounting a tmpfs needs root", errSkip)
	}
	state := env.Mkdir("state")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", state).CombinedOutput(); err != nil {
		return Result{}, fmt.Errorf("mount tmpfs: %v: %s", err, out)
	}
	// Registered before the Emperor starts, so it runs after it stopped.
	env.Cleanup(func() {
		if err := syscall.Unmount(state, 0); err != nil {
			syscall.Unmount(state, syscall.MNT_DETACH)
		}
	})
	port, err := FreePort()
	if err != nil {
		return Result{}, err
	}
	endpoint := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	em, err := startZmqEmperor(ctx, env, endpoint, state)
	if err != nil {
		return Result{}, err
	}
	p, err := newZmqPusher(env, endpoint)
	if err != nil {
		return Result{}, err
	}
	before := vassalNames("v", 1, env.Count(6, 3))
	if err := pushVassals(env, p, 0, before...); err != nil {
		return Result{}, err
	}
	if err := waitRunning(ctx, em, 0, before...); err != nil {
		return Result{}, err
	}

	// Fill the file system.
	filler := filepath.Join(state, "filler")
	f, err := os.Create(filler)
	if err != nil {
		return Result{}, err
	}
	chunk := make([]byte, 1024)
	filled := 0
	for {
		n, err := f.Write(chunk)
		filled += n
		if err != nil {
			break
		}
	}
	f.Sync()
	f.Close()
	var st syscall.Statfs_t
	syscall.Statfs(state, &st)
	free := int64(st.Bavail) * int64(st.Bsize)

	// Push while it is full: new vassals, their configs padded to 6 KiB
	// so that no record fits in what is left of the journal's last page,
	// and a destroy of the first.
	mark := em.LogSize()
	during := vassalNames("w", 1, env.Count(4, 2))
	if err := pushVassals(env, p, 6<<10, during...); err != nil {
		return Result{}, err
	}
	if err := p.push("destroy", before[0]); err != nil {
		return Result{}, err
	}
	ectx, cancel := context.WithTimeout(ctx, 20*time.Second)
	errLine, err := em.WaitLog(ectx, mark, "cannot write the push journal")
	cancel()
	if err != nil {
		return Result{Measured: "no `cannot write the push journal` line while full: " + err.Error()}, nil
	}
	hold := time.Duration(env.Count(10, 2)) * time.Second
	select {
	case <-time.After(hold):
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	_, _, acksWhileFull := pushLog(em.Log, mark)
	runningWhileFull := 0
	for _, n := range during {
		if _, ok := findLine(em.Log, mark, []string{`msg="vassal running"`, "vassal=" + n + " "}); ok {
			runningWhileFull++
		}
	}
	stoppedWhileFull := 0
	if _, ok := findLine(em.Log, mark, []string{`msg="vassal stopping"`, "vassal=" + before[0] + " "}); ok {
		stoppedWhileFull++
	}

	// Free it.
	freeMark := em.LogSize()
	if err := os.Remove(filler); err != nil {
		return Result{}, err
	}
	freed := time.Now()
	var recovered time.Duration = -1
	if _, err := em.WaitLog(ctx, freeMark, "push journal written again"); err == nil {
		recovered = time.Since(freed)
	}
	if err := waitRunning(ctx, em, freeMark, during...); err != nil {
		return Result{Measured: "held vassals never ran after the disk was freed: " + err.Error()}, nil
	}
	acked, _, _ := pushLog(em.Log, 0)
	ackedList := sortedKeys(acked)

	// Restart.
	if err := em.Stop(15 * time.Second); err != nil && !strings.Contains(err.Error(), "exit status") {
		return Result{}, fmt.Errorf("stopping the Emperor: %w", err)
	}
	em2, err := startZmqEmperor(ctx, env, endpoint, state)
	if err != nil {
		return Result{}, err
	}
	if _, err := em2.WaitLog(ctx, 0, "push journal replayed"); err != nil {
		return Result{}, err
	}
	_, back, _ := pushLog(em2.Log, 0)
	lost := setDiff(ackedList, back)
	extra := setDiff(back, ackedList)
	runningAfter := 0
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, n := range back {
		if _, err := em2.WaitLog(rctx, 0, `msg="vassal running"`, "vassal="+n+" "); err == nil {
			runningAfter++
		}
	}

	recStr := "never written again"
	if recovered >= 0 {
		recStr = "written again " + Ms(recovered) + " after freeing"
	}
	m := fmt.Sprintf("acknowledged %d (%d, then %d touches + 1 destroy held while full), back after restart %d (running %d), lost %d, unexpected %d; "+
		"while full (%d B free after a %d KiB filler, %s held): %d acknowledged, %d of the held vassals started, %d stopped, first error %q; %s",
		len(ackedList), len(before), len(during), len(back), runningAfter, len(lost), len(extra),
		free, filled/1024, hold, acksWhileFull, runningWhileFull, stoppedWhileFull, strings.ReplaceAll(logValue(errLine, "err"), state+"/", ""), recStr)
	if len(lost) > 0 {
		m += " lost: " + strings.Join(lost, ",")
	}
	held := len(lost) == 0 && len(extra) == 0 && acksWhileFull == 0 && runningWhileFull == 0 && stoppedWhileFull == 0 &&
		recovered >= 0 && runningAfter == len(back) && len(ackedList) == len(before)-1+len(during)
	return Result{Measured: m, Held: held}, nil
}

func runJournalCorrupt(ctx context.Context, env *Env) (Result, error) {
	state := env.Mkdir("state")
	port, err := FreePort()
	if err != nil {
		return Result{}, err
	}
	endpoint := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	em, err := startZmqEmperor(ctx, env, endpoint, state)
	if err != nil {
		return Result{}, err
	}
	p, err := newZmqPusher(env, endpoint)
	if err != nil {
		return Result{}, err
	}
	n := env.Count(8, 4)
	names := vassalNames("v", 1, n)
	if err := pushVassals(env, p, 0, names...); err != nil {
		return Result{}, err
	}
	if err := waitRunning(ctx, em, 0, names...); err != nil {
		return Result{}, err
	}
	if err := em.Stop(15 * time.Second); err != nil && !strings.Contains(err.Error(), "exit status") {
		return Result{}, fmt.Errorf("stopping the Emperor: %w", err)
	}

	// Damage the record of the middle vassal: flip the case of three
	// letters of its config (the line stays a line; its CRC fails).
	journals, _ := filepath.Glob(filepath.Join(state, "push-*.journal"))
	if len(journals) != 1 {
		return Result{}, fmt.Errorf("want one journal in %s, found %q", state, journals)
	}
	file := journals[0]
	b, err := os.ReadFile(file)
	if err != nil {
		return Result{}, err
	}
	victim := names[n/2]
	lines := bytes.SplitAfter(b, []byte("\n"))
	hit, records := -1, 0
	for i, l := range lines {
		if len(bytes.TrimSpace(l)) > 0 {
			records++
		}
		if bytes.Contains(l, []byte(`"name":"`+victim+`"`)) && bytes.Contains(l, []byte(`"touch"`)) {
			hit = i
		}
	}
	if hit < 0 {
		return Result{}, fmt.Errorf("no touch record for %s in %s", victim, file)
	}
	l := lines[hit]
	at := bytes.Index(l, []byte(`"config":`))
	if at < 0 {
		return Result{}, fmt.Errorf("no config in the record for %s: %q", victim, l)
	}
	flipped := 0
	for i := at + len(`"config":`); i < len(l) && flipped < 3; i++ {
		if c := l[i] | 0x20; c >= 'a' && c <= 'z' {
			l[i] ^= 0x20
			flipped++
		}
	}
	if err := os.WriteFile(file, bytes.Join(lines, nil), 0o600); err != nil {
		return Result{}, err
	}

	em2, err := startZmqEmperor(ctx, env, endpoint, state)
	if err != nil {
		return Result{}, err
	}
	replayedLine, err := em2.WaitLog(ctx, 0, "push journal replayed")
	if err != nil {
		return Result{}, err
	}
	_, back, _ := pushLog(em2.Log, 0)
	lost := setDiff(names, back)
	damaged := em2.CountLog("push journal damaged")
	damagedLine, _ := findLine(em2.Log, 0, []string{"push journal damaged"})
	aside, _ := filepath.Glob(file + ".corrupt-*")
	asideOK := false
	if len(aside) == 1 {
		if kept, err := os.ReadFile(aside[0]); err == nil && bytes.Equal(kept, bytes.Join(lines, nil)) {
			asideOK = true
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	running := 0
	for _, v := range back {
		if _, err := em2.WaitLog(rctx, 0, `msg="vassal running"`, "vassal="+v+" "); err == nil {
			running++
		}
	}
	asideNames := make([]string, len(aside))
	for i, a := range aside {
		asideNames[i] = filepath.Base(a)
	}
	m := fmt.Sprintf("%d of %d back (running %d), lost %s (record %d of %d damaged); %d `push journal damaged` line (err %q); kept aside: %s (identical to the damaged file: %v); replayed vassals=%s",
		len(back), n, running, strings.Join(lost, ","), hit+1, records, damaged, strings.ReplaceAll(logValue(damagedLine, "err"), state+"/", ""),
		strings.Join(asideNames, ","), asideOK, Field(replayedLine, "vassals"))
	held := len(back) == n-1 && len(lost) == 1 && lost[0] == victim && running == n-1 && damaged == 1 && asideOK
	if held {
		held = strconv.Itoa(n-1) == Field(replayedLine, "vassals")
	}
	return Result{Measured: m, Held: held}, nil
}

// logValue reads key=value from a slog text line, the value quoted or
// not (Field stops at the first space of a quoted one).
func logValue(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	rest := line[i+len(key)+2:]
	if !strings.HasPrefix(rest, `"`) {
		v, _, _ := strings.Cut(rest, " ")
		return v
	}
	if q, err := strconv.QuotedPrefix(rest); err == nil {
		if v, err := strconv.Unquote(q); err == nil {
			return v
		}
	}
	return rest
}
