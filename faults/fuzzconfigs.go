package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// 10,000 fuzzed vassal configs, in batches, in a directory two Emperors
// watch: one as root (each config spawned as bin/vassal, its [emperor]
// section read by the Emperor for cgroup limits), one in tyrant mode (it
// opens each config itself, refuses the root-owned ones and sends the
// nobody-owned ones' text, NULs and all, over the config channel). A
// healthy vassal serves throughout.
func init() {
	register(Scenario{
		Order: 70, Name: "fuzzed-configs",
		Fault:   "10,000 fuzzed ini/xml/yaml/json configs (random bytes, truncations, huge lines, includes of missing files, @(file), placeholders, magic vars, NULs, invalid UTF-8), 200 at a time, two Emperors (root, tyrant)",
		Hold:    "no Emperor crash; stats keep answering (p50/p99); the healthy vassal keeps its pid and serves; no removed config stays listed",
		Timeout: 20 * time.Minute,
		Run:     runFuzzedConfigs,
	})
}

func runFuzzedConfigs(ctx context.Context, env *Env) (Result, error) {
	total, batch := env.Count(10000, 500), env.Count(200, 100)
	root, err := worldDir(env, "fuzz")
	if err != nil {
		return Result{}, err
	}
	dir := filepath.Join(root, "vassals")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return Result{}, err
	}
	port, err := FreePort()
	if err != nil {
		return Result{}, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if err := os.WriteFile(filepath.Join(dir, "app.ini"), []byte(fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\n", port, env.Hello)), 0o644); err != nil {
		return Result{}, err
	}
	sockA, sockB := filepath.Join(root, "stats-a.sock"), filepath.Join(root, "stats-b.sock")
	common := []string{"--emperor", dir, "--binary-path", env.Vassal,
		"--emperor-throttle-burst", "-1", // batches, not a throttle, pace the spawns
		"--emperor-curse-tolerance", "3"} // a vassal hung in its config is SIGKILLed soon
	emA, err := env.StartEmperor(append(common, "--emperor-stats", sockA)...)
	if err != nil {
		return Result{}, err
	}
	emB, err := env.StartEmperor(append(common, "--emperor-stats", sockB, "--emperor-tyrant")...)
	if err != nil {
		return Result{}, err
	}
	if _, err := emA.WaitLog(ctx, 0, `msg="vassal is loyal"`, "vassal=app.ini"); err != nil {
		return Result{}, err
	}
	if _, ok := Poll(ctx, func() bool { _, err := Get(url); return err == nil }); !ok {
		return Result{}, fmt.Errorf("%s never served", url)
	}
	s0, err := readStats(sockA)
	if err != nil {
		return Result{}, err
	}
	pid0 := s0.vassalPid("app.ini")

	// Quiet stats latency, then the same during the fuzz.
	var quiet, during, statsB durSample
	for i := 0; i < 20; i++ {
		quiet.add(timed(func() error { _, err := Stats(sockA); return err }))
		time.Sleep(20 * time.Millisecond)
	}
	var gets durSample
	stopA := every(ctx, 50*time.Millisecond, func() {
		during.add(timed(func() error { _, err := Stats(sockA); return err }))
	})
	stopB := every(ctx, 200*time.Millisecond, func() {
		statsB.add(timed(func() error { _, err := Stats(sockB); return err }))
	})
	stopGet := every(ctx, 200*time.Millisecond, func() {
		gets.add(timed(func() error { _, err := Get(url); return err }))
	})

	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	gen := newConfigFuzzer(rng)
	written, chowned, unseen, slowGone := 0, 0, 0, 0
	var bytesWritten int64
	ghosts := map[string]bool{} // stats socket NUL vassal id
	began := time.Now()
	for b := 0; written < total && ctx.Err() == nil; b++ {
		markA, markB := emA.LogSize(), emB.LogSize()
		var names []string
		for i := 0; i < batch && written < total; i++ {
			name, text := gen.config(b, i)
			p := filepath.Join(dir, name)
			tmp := filepath.Join(dir, fmt.Sprintf(".tmp-%d-%d", b, i))
			if err := os.WriteFile(tmp, text, 0o644); err != nil {
				return Result{}, err
			}
			if rng.Intn(4) == 0 { // the tyrant Emperor runs these, as nobody
				os.Chown(tmp, nobodyUID, nobodyGID)
				chowned++
			}
			if err := os.Rename(tmp, p); err != nil {
				return Result{}, err
			}
			names = append(names, name)
			written++
			bytesWritten += int64(len(text))
		}
		// Both Emperors have seen the batch and started what they start.
		settled := func(sock string) bool {
			s, err := readStats(sock)
			return err == nil && s.countPrefix("fz") >= len(names) && s.Starting == 0 && s.Queued == 0 && s.Throttled == 0
		}
		// Not waiting long: a vassal that never speaks holds its start
		// slot for the start window (10 s), and removing it is part of the
		// fuzz.
		wctx, cancel := context.WithTimeout(ctx, 6*time.Second)
		if _, ok := Poll(wctx, func() bool { return settled(sockA) && settled(sockB) }); !ok {
			unseen++
		}
		cancel()
		time.Sleep(300 * time.Millisecond) // let crash loops and config reads run a little
		for _, n := range names {
			os.Remove(filepath.Join(dir, n))
		}
		var lingering, lingerIDs []string
		var lingerEm *Emperor
		removed := time.Now()
		onlyDisabled := false
		gone := func(sock string) bool {
			s, err := readStats(sock)
			if err != nil {
				return false
			}
			lingering, lingerIDs, lingerEm = lingering[:0], lingerIDs[:0], emA
			if sock == sockB {
				lingerEm = emB
			}
			onlyDisabled = true
			for _, v := range s.Vassals {
				if strings.HasPrefix(v.ID, "fz") && !ghosts[sock+"\x00"+v.ID] {
					onlyDisabled = onlyDisabled && v.State == "disabled"
					lingering = append(lingering, fmt.Sprintf("%q %s/%s pid %d", v.ID, v.State, v.Sub, v.Pid))
					lingerIDs = append(lingerIDs, v.ID)
				}
			}
			return len(lingering) == 0
		}
		wctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		// A disabled vassal is dropped as soon as its config goes: one
		// still listed 5 s on is taken for a ghost without waiting 30 s.
		ghostly := false
		if _, ok := Poll(wctx, func() bool {
			if gone(sockA) && gone(sockB) {
				return true
			}
			ghostly = onlyDisabled && time.Since(removed) > 5*time.Second
			return ghostly
		}); !ok || ghostly {
			// Still listed long after its config went: a ghost. Later
			// batches do not wait for it; the end counts those left.
			slowGone++
			for _, id := range lingerIDs {
				if lingerEm == emA {
					ghosts[sockA+"\x00"+id] = true
				} else {
					ghosts[sockB+"\x00"+id] = true
				}
			}
			fmt.Fprintf(os.Stderr, "faults: fuzzed-configs: batch %d: still there %s after removal: %s\n", b, time.Since(removed).Round(time.Second), strings.Join(lingering, "; "))
			if len(lingerIDs) > 0 {
				mark := markA
				if lingerEm == emB {
					mark = markB
				}
				fmt.Fprintf(os.Stderr, "faults: fuzzed-configs: the Emperor's lines on %q:\n%s\n", lingerIDs[0], emperorLinesOn(lingerEm, mark, lingerIDs[0], 12))
			}
		}
		cancel()
		if !alive(emA) || !alive(emB) {
			break
		}
	}
	took := time.Since(began)
	stopA()
	stopB()
	stopGet()

	crashes := 0
	for _, em := range []*Emperor{emA, emB} {
		if !alive(em) {
			crashes++
		}
	}
	pid1 := 0
	if s, err := readStats(sockA); err == nil {
		pid1 = s.vassalPid("app.ini")
	}
	_, serveErr := Get(url)
	// Ghosts: fuzz vassals still listed, their configs long removed.
	ghostsLeft := 0
	for _, sock := range []string{sockA, sockB} {
		if s, err := readStats(sock); err == nil {
			ghostsLeft += s.countPrefix("fz")
		}
	}
	var left []int
	if crashes == 0 {
		lctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		Poll(lctx, func() bool {
			left = append(leftovers(env, emA, pid1), leftovers(env, emB, 0)...)
			return len(left) == 0
		})
	}
	okA, errA := during.n()
	_, errB := statsB.n()
	okGet, errGet := gets.n()
	m := fmt.Sprintf("%d configs (%s MiB, %d tyrant-run) in %s: crashes %d; stats p50/p99 %s/%s during (quiet %s/%s), %d answered, %d failed (tyrant Emperor: %d failed); healthy pid %d→%d, %d/%d GETs ok; batches not settled in 6 s: %d, not gone after removal: %d; vassals still listed at the end, their configs removed: %d; processes left: %d",
		written, strings.TrimSuffix(mib(bytesWritten), " MiB"), chowned, took.Round(time.Second), crashes,
		Ms(during.pct(0.5)), Ms(during.pct(0.99)), Ms(quiet.pct(0.5)), Ms(quiet.pct(0.99)), okA, errA, errB,
		pid0, pid1, okGet, okGet+errGet, unseen, slowGone, ghostsLeft, len(left))
	held := crashes == 0 && written == total && errA == 0 && errB == 0 && env.Bound(during.pct(0.99) < time.Second) &&
		pid0 != 0 && pid0 == pid1 && serveErr == nil && errGet == 0 && ghostsLeft == 0 && len(left) == 0
	return Result{Measured: m, Held: held}, nil
}

// emperorLinesOn returns the last n of the Emperor's own lines (they name
// the monitor) on vassal id, from byte offset from of its log.
func emperorLinesOn(em *Emperor, from int64, id string, n int) string {
	f, err := os.Open(em.Log)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return err.Error()
	}
	// Not eachLine: vassals echo the fuzz's huge lines (over its 1 MiB
	// line limit) into the shared log; these are skipped, not an end.
	rd := bufio.NewReaderSize(f, 64<<10)
	var lines []string
	for {
		l, long, err := rd.ReadLine()
		if err != nil {
			break
		}
		line := string(l)
		for long && err == nil {
			_, long, err = rd.ReadLine()
		}
		if strings.Contains(line, "vassal="+id+" ") && strings.Contains(line, "monitor=") {
			if len(line) > 700 {
				line = line[:700] + "..."
			}
			lines = append(lines, line)
			if len(lines) > n {
				lines = lines[1:]
			}
		}
	}
	return strings.Join(lines, "\n")
}

// configFuzzer makes vassal configs by mutating valid ones.
type configFuzzer struct {
	r *rand.Rand
}

func newConfigFuzzer(r *rand.Rand) *configFuzzer { return &configFuzzer{r: r} }

// The valid seeds: each starts a vassal whose worker is a sleep on an
// ephemeral port, with an [emperor] section the Emperor reads.
var fuzzSeeds = []struct{ ext, text string }{
	{".ini", "[uwsgi]\nhttp-socket = 127.0.0.1:0\nworker-exec = /bin/sleep 30\nprocesses = 1\nname = %n\nenv = HOME_IS=$(HOME)\nsocket-timeout = %(processes)\n\n[emperor]\ncgroup-memory = 64M\ncgroup-pids = 16\ncgroup-cpu-weight = 50\ncgroup-cpu-quota = 50%\n"},
	{".ini", "; a comment\n[uwsgi]\nini = :base\nhttp-socket = 127.0.0.1:0\n\n[base]\nworker-exec = /bin/sleep 30\n[emperor]\ncgroup-memory = 1G\n"},
	{".xml", "<?xml version=\"1.0\"?>\n<uwsgi>\n  <http-socket>127.0.0.1:0</http-socket>\n  <worker-exec>/bin/sleep 30</worker-exec>\n  <processes>1</processes>\n  <name>%n</name>\n</uwsgi>\n"},
	{".yaml", "uwsgi:\n  http-socket: 127.0.0.1:0\n  worker-exec: /bin/sleep 30\n  processes: 1\n  env:\n    - A=1\n    - B=%n\nemperor:\n  cgroup-memory: 64M\n"},
	{".yml", "uwsgi:\n  http-socket: 127.0.0.1:0\n  worker-exec: /bin/sleep 30\n"},
	{".json", `{"uwsgi": {"http-socket": "127.0.0.1:0", "worker-exec": "/bin/sleep 30", "processes": 1, "env": ["A=1", "B=%n"]}, "emperor": {"cgroup-memory": "64M"}}` + "\n"},
	{".js", `{"uwsgi": {"http-socket": "127.0.0.1:0", "worker-exec": "/bin/sleep 30"}}`},
}

var fuzzExts = []string{".ini", ".xml", ".yaml", ".yml", ".json", ".js"}

// config returns the name and text of config i of batch b.
func (f *configFuzzer) config(b, i int) (string, []byte) {
	r := f.r
	seed := fuzzSeeds[r.Intn(len(fuzzSeeds))]
	text := []byte(seed.text)
	ext := seed.ext
	if r.Intn(10) == 0 {
		ext = fuzzExts[r.Intn(len(fuzzExts))] // a format its name does not say
	}
	self := fmt.Sprintf("fz-%03d-%03d", b, i)
	name := self
	if r.Intn(20) == 0 { // names that argv, logs and JSON must carry
		odd := []string{" space", "%n%d", "$(HOME)", "@(x)", "\xff\xfe", "\n", "--help", "é", "\t", "'\"", ";rm", "..", strings.Repeat("x", 180)}
		name += odd[r.Intn(len(odd))]
	}
	name += ext
	for k := 1 + r.Intn(4); k > 0; k-- {
		text = f.mutate(text, name)
	}
	return name, text
}

func (f *configFuzzer) mutate(t []byte, self string) []byte {
	r := f.r
	at := func() int { return r.Intn(len(t) + 1) }
	insert := func(s []byte) []byte {
		p := at()
		return append(t[:p:p], append(s, t[p:]...)...)
	}
	switch r.Intn(16) {
	case 0: // random bytes over the text
		for k := 1 + r.Intn(20); k > 0 && len(t) > 0; k-- {
			t[r.Intn(len(t))] = byte(r.Intn(256))
		}
		return t
	case 1: // truncated
		return t[:at()]
	case 2: // a huge line: a long value, sometimes in the [emperor] section
		n := 1<<10 + r.Intn(256<<10)
		if r.Intn(10) == 0 {
			n = 1<<20 + r.Intn(1<<20) // past what the Emperor reads of a config
		}
		line := append([]byte("\n[emperor]\ncgroup-memory = "), bytes.Repeat([]byte{"9a %\x00"[r.Intn(5)]}, n)...)
		return insert(append(line, '\n'))
	case 3: // deep includes of files that do not exist, or of itself
		var b strings.Builder
		for k := r.Intn(300); k > 0; k-- {
			switch r.Intn(5) {
			case 0:
				fmt.Fprintf(&b, "include = /nonexistent/%d/x.ini\n", k)
			case 1:
				fmt.Fprintf(&b, "ini = %s\n", self)
			case 2:
				fmt.Fprintf(&b, "<include>missing-%d.xml</include>\n", k)
			case 3:
				fmt.Fprintf(&b, "ini = %s:section%d\n", self, k)
			default:
				fmt.Fprintf(&b, "[section%d]\nini = %s:section%d\n", k, self, k+1)
			}
		}
		return insert([]byte(b.String()))
	case 4: // @(file) references
		refs := []string{"@(/nonexistent)", "@(/dev/null)", "@(/proc/self/status)", "@(" + self + ")", "@(", "@()", "@(/etc/hostname)", "@(/dev/zero)", "@(.)", "@(@(x))"}
		return insert([]byte("\nhttp-socket = " + refs[r.Intn(len(refs))] + "\ncgroup-pids = " + refs[r.Intn(len(refs))] + "\n"))
	case 5: // placeholders: cycles, chains, expressions, unterminated
		var b strings.Builder
		switch r.Intn(4) {
		case 0:
			b.WriteString("a = %(b)\nb = %(a)\n")
		case 1:
			for k := 0; k < 200; k++ {
				fmt.Fprintf(&b, "p%d = %%(p%d)%%(p%d)\n", k, k+1, k+1)
			}
		case 2:
			b.WriteString("x = %(1 + 2 * processes -- ++ / 0)\nprocesses = %(x)\n")
		default:
			b.WriteString("y = %(\nz = %(%(%(\n")
		}
		return insert([]byte(b.String()))
	case 6: // magic variables
		var b strings.Builder
		b.WriteString("\nname = ")
		for k := r.Intn(50); k > 0; k-- {
			b.WriteByte('%')
			b.WriteByte("dnpsexcjkvoO0123456789[%(_?"[r.Intn(27)])
		}
		b.WriteByte('\n')
		return insert([]byte(b.String()))
	case 7: // NUL bytes
		for k := 1 + r.Intn(10); k > 0; k-- {
			t = insert([]byte{0})
		}
		return t
	case 8: // invalid UTF-8
		bad := [][]byte{{0xff}, {0xfe, 0xff}, {0x80}, {0xc0, 0xaf}, {0xed, 0xa0, 0x80}, {0xf4, 0x90, 0x80, 0x80}, {0xe2, 0x82}}
		for k := 1 + r.Intn(10); k > 0; k-- {
			t = insert(bad[r.Intn(len(bad))])
		}
		return t
	case 9: // [emperor] sections the Emperor must read or refuse
		vals := []string{"-1", "0", "1e999", "99999999999999999999999", "", "50%%", "0x10", "NaN", "64M64M", "1G", "   ", "\x00", "10000000", "%(x)", "@(/etc/passwd)"}
		keys := []string{"cgroup-memory", "cgroup-pids", "cgroup-cpu-weight", "cgroup-cpu-quota", "cgroup-", "cgroup-unknown", "cgroup-memory ="}
		var b strings.Builder
		b.WriteString([]string{"\n[emperor]\n", "\n[ emperor ]\n", "\n[emperor\n", "\n[[emperor]]\n", "\n[EMPEROR]\n"}[r.Intn(5)])
		for k := 1 + r.Intn(6); k > 0; k-- {
			fmt.Fprintf(&b, "%s = %s\n", keys[r.Intn(len(keys))], vals[r.Intn(len(vals))])
		}
		return insert([]byte(b.String()))
	case 10: // line endings and a BOM
		switch r.Intn(3) {
		case 0:
			return bytes.ReplaceAll(t, []byte("\n"), []byte("\r\n"))
		case 1:
			return bytes.ReplaceAll(t, []byte("\n"), []byte("\r"))
		default:
			return append([]byte("\xef\xbb\xbf"), t...)
		}
	case 11: // environment variables
		refs := []string{"$(HOME)", "$(UNDEFINED_X)", "$(", "$()", "$($(HOME))", "$(PATH)$(PATH)$(PATH)"}
		return insert([]byte("\nchdir = " + refs[r.Intn(len(refs))] + "\n"))
	case 12: // all random
		b := make([]byte, r.Intn(8192))
		r.Read(b)
		return b
	case 13: // deep nesting
		n := 1000 + r.Intn(50000)
		switch r.Intn(3) {
		case 0:
			return insert([]byte(strings.Repeat("<a>", n) + strings.Repeat("</a>", n/2)))
		case 1:
			return insert([]byte(strings.Repeat("[", n)))
		default:
			var b strings.Builder
			for k := 0; k < n/20; k++ {
				b.WriteString(strings.Repeat(" ", k%200) + "- x:\n")
			}
			return insert([]byte(b.String()))
		}
	case 14: // a splice of another seed
		o := []byte(fuzzSeeds[r.Intn(len(fuzzSeeds))].text)
		return append(t[:at()], o[r.Intn(len(o)):]...)
	default: // empty
		return nil
	}
}
