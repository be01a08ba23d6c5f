package emperor

import (
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testkit"
	"github.com/emperor-dev/emperor/monitor"
)

func TestTransitionTable(t *testing.T) {
	// Every state but Absent can be reached, and every state can be left.
	reached := map[State]bool{}
	for from := State(0); from < numStates; from++ {
		if len(allowed[from]) == 0 {
			t.Errorf("%s has no way out", from)
		}
		for _, to := range allowed[from] {
			reached[to] = true
			if to == from {
				t.Errorf("%s → %s: self transitions are not state changes", from, to)
			}
		}
	}
	for s := State(0); s < numStates; s++ {
		if !reached[s] {
			t.Errorf("%s is unreachable", s)
		}
	}
	cases := []struct {
		from, to State
		ok       bool
	}{
		{Absent, Waiting, true},
		{Absent, Running, false}, // everything spawns through the spawner
		{Waiting, Spawning, true},
		{Running, Absent, false}, // a live process is never forgotten
		{Stopping, Running, false},
		{Cursed, Waiting, true},
		{Disabled, Spawning, false},
		{Disabled, Waiting, true},
	}
	for _, c := range cases {
		if got := canTransition(c.from, c.to); got != c.ok {
			t.Errorf("canTransition(%s, %s) = %v, want %v", c.from, c.to, got, c.ok)
		}
	}
	d := StateDiagram()
	if !strings.Contains(d, "running -> cursed;") || !strings.HasPrefix(d, "digraph") {
		t.Errorf("diagram misses transitions:\n%s", d)
	}
}

func TestRespawnDelay(t *testing.T) {
	s := time.Second
	cases := []struct {
		deaths int
		want   time.Duration
	}{
		{0, 0}, {1, 0}, {2, s}, {3, 2 * s}, {181, 180 * s}, {1000, 180 * s}, {1 << 62, 180 * s},
	}
	for _, c := range cases {
		if got := respawnDelay(c.deaths, s, 180*s, false); got != c.want {
			t.Errorf("respawnDelay(%d) = %s, want %s", c.deaths, got, c.want)
		}
	}
	if got := respawnDelay(10, s, 180*s, true); got != 0 {
		t.Errorf("disabled blacklist still delays: %s", got)
	}
}

func TestVassalArgvIsUWSGIs(t *testing.T) {
	o := &Options{
		Binary:          "/usr/bin/uwsgi",
		InheritBefore:   []string{"ib.ini"},
		IncludeBefore:   []string{"cb.ini"},
		VassalSet:       []string{"a=1", "b=2"},
		Inherit:         []string{"i.ini"},
		Include:         []string{"c.ini"},
		ExtraExtensions: []string{"conf"},
	}
	cases := []struct {
		ev   monitor.Event
		want []string
	}{
		{monitor.Event{Key: monitor.Key{Name: "app.ini"}, Path: "/v/app.ini"},
			[]string{"/usr/bin/uwsgi", "--inherit", "ib.ini", "--include", "cb.ini", "--set", "a=1", "--set", "b=2", "--ini", "app.ini", "--inherit", "i.ini", "--include", "c.ini"}},
		{monitor.Event{Key: monitor.Key{Name: "apps/x/app.yml"}, Path: "/v/apps/x/app.yml"}, nil},
		{monitor.Event{Key: monitor.Key{Name: "db.xml"}, Config: []byte("<uwsgi/>")}, nil},
		{monitor.Event{Key: monitor.Key{Name: "site.conf"}, Path: "/v/site.conf"}, nil},
	}
	flags := []string{"--ini", "--yaml", "--xml", "--config"}
	names := []string{"app.ini", "app.yml", "emperor://db.xml", "site.conf"}
	for i, c := range cases {
		got := vassalArgv(o, &c.ev, c.ev.Config != nil)
		if c.want != nil && !slices.Equal(got, c.want) {
			t.Errorf("argv = %q\nwant   %q", got, c.want)
		}
		mid := slices.Index(got, flags[i])
		if mid < 0 || got[mid+1] != names[i] {
			t.Errorf("%s: argv %q lacks %s %s", c.ev.Key.Name, got, flags[i], names[i])
		}
	}
}

func TestVassalEnv(t *testing.T) {
	in := []string{
		"PATH=/bin", "UWSGI_SOCKET=old", "UWSGI_VASSAL_SOCKET=new", "UWSGI_RELOADS=2",
		"NOTIFY_SOCKET=/run/notify", "UWSGI_EMPEROR=/etc/vassals", "UWSGI_EMPEROR_FD=7",
		"UWSGI_EMPEROR_FD_CONFIG=8", "UWSGI_VASSALS_DIR=/x", "UWSGI_MASTER=1", "UWSGI_VASSAL_=odd",
	}
	got := vassalEnv(in)
	want := []string{"PATH=/bin", "UWSGI_MASTER=1", "UWSGI_VASSAL_=odd", "UWSGI_SOCKET=new"}
	if !slices.Equal(got, want) {
		t.Errorf("vassalEnv =\n%q\nwant\n%q", got, want)
	}
}

func TestMetricsTextEscapesLabels(t *testing.T) {
	s := &Stats{Counters: newCounters(), Vassals: []VassalStats{{ID: "we\"ird\\na\nme.ini", MonitorURI: "dir:///v", State: "running", Pid: 7, Loyal: 1}}}
	s.Counters.ConfigToReady.observe(0.03)
	s.Counters.Restarts["died"] = 2
	var b strings.Builder
	writeMetrics(&b, s, true)
	out := b.String()
	for _, want := range []string{
		`emperor_vassal_up{vassal="we\"ird\\na\nme.ini",monitor="dir:///v"} 1`,
		`emperor_vassals{state="running"} 1`,
		`emperor_restarts_total{reason="died"} 2`,
		`emperor_config_to_ready_seconds_bucket{le="0.025"} 0`,
		`emperor_config_to_ready_seconds_bucket{le="0.05"} 1`,
		`emperor_config_to_ready_seconds_count 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "me.ini") {
			t.Errorf("a raw newline in a vassal name split a metric line: %q", line)
		}
	}
}

// TestMetricsOfHostileNamesPassPromtool: any bytes a file name can hold
// (here invalid UTF-8, a quote, a backslash, a newline, a NUL-free control
// byte) keep the whole scrape valid, and two names differing only in an
// invalid byte stay two series.
func TestMetricsOfHostileNamesPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (Debian package prometheus)")
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	names := []string{"caf\xe9.ini", "caf\xe8.ini", "\xff\xfe\\\"\n\x01.ini", "ok.ini"}
	s := &Stats{Counters: newCounters()}
	for i, n := range names {
		s.Vassals = append(s.Vassals, VassalStats{ID: n, MonitorURI: "dir:///v\xc3", State: "running", Pid: 7 + i})
	}
	s.Monitors = []MonitorStats{{Monitor: "zmq://tcp://127.0.0.1:5252", Status: map[string]any{"journal_pending": 1, "journal_errors": uint64(3)}}}
	check := func(perVassal bool) string {
		var b strings.Builder
		writeMetrics(&b, s, perVassal)
		for _, want := range []string{`emperor_push_journal_pending{monitor="zmq://tcp://127.0.0.1:5252"} 1`, `emperor_push_journal_errors_total{monitor="zmq://tcp://127.0.0.1:5252"} 3`} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("metrics (per vassal %t) lack %s", perVassal, want)
			}
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(b.String())
		out, err := cmd.CombinedOutput()
		// promtool check metrics exits 3 for lint warnings (counter naming,
		// issue 19), 1 for a scrape it cannot parse.
		if err != nil && (cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3) || strings.Contains(string(out), "error while linting") {
			t.Fatalf("promtool (per vassal %t): %v\n%s\nmetrics:\n%s", perVassal, err, out, b.String())
		}
		return b.String()
	}
	text := check(true)
	if n := strings.Count(text, "emperor_vassal_up{"); n != len(names) {
		t.Errorf("%d emperor_vassal_up series for %d vassals", n, len(names))
	}
	if !strings.Contains(text, `emperor_vassal_up{vassal="caf\\xe9.ini",monitor="dir:///v\\xc3"} 1`) {
		t.Errorf("an invalid byte is not written as \\xNN:\n%s", text)
	}

	// emperor-metrics-per-vassal = false: no series names a vassal, and
	// the counts by state add up to the vassals.
	text = check(false)
	if strings.Contains(text, "vassal=") {
		t.Errorf("per-state metrics name a vassal:\n%s", text)
	}
	for _, want := range []string{`emperor_vassals{state="running"} 4`, `emperor_vassals_up{state="running"} 4`, `emperor_vassals_up{state="waiting"} 0`} {
		if !strings.Contains(text, want) {
			t.Errorf("per-state metrics lack %s:\n%s", want, text)
		}
	}
}

// TestThrottleWaves walks the throttle through a healthy flood, a storm of
// failures and a quiet spell: no delay while nothing fails; each failure
// raises the level by a step, at most once per level (capped); waves of
// burst spawns a level apart while it is up; a wave with no failure since
// the previous one halves it.
func TestThrottleWaves(t *testing.T) {
	const burst, ms = 2, time.Millisecond
	const step, max = 400 * ms, 1000 * ms
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var th throttle
	steps := []struct {
		fails   []time.Duration // failures recorded before the spawn is asked for
		asked   time.Duration   // when the spawn is asked for
		startAt time.Duration   // when next lets it start
		level   time.Duration   // the level after take
	}{
		{nil, 0, 0, 0}, // a healthy flood: never delayed, whatever its size
		{nil, 0, 0, 0},
		{nil, 0, 0, 0},
		{nil, 10 * ms, 10 * ms, 0},
		{[]time.Duration{20 * ms, 30 * ms, 40 * ms}, 50 * ms, 400 * ms, step}, // three failures at once: one step; the next wave waits the level
		{nil, 400 * ms, 400 * ms, step},                                       // room in it
		{[]time.Duration{500 * ms}, 500 * ms, 1200 * ms, 2 * step},            // a failure a level after the last raise: +1 step
		{nil, 1200 * ms, 1200 * ms, 2 * step},                                 // room
		{[]time.Duration{1300 * ms, 1400 * ms}, 1300 * ms, 2200 * ms, max},    // failures go on: capped; one within the level raises nothing
		{nil, 2200 * ms, 2200 * ms, max},                                      // room
		{nil, 5000 * ms, 5000 * ms, max / 2},                                  // a wave with no failure since the last: halved
		{nil, 5000 * ms, 5000 * ms, max / 2},                                  // room
		{nil, 20000 * ms, 20000 * ms, max / 4},                                // a lone spawn after a quiet spell: not delayed, halved
	}
	for i, w := range steps {
		for _, f := range w.fails {
			th = th.fail(at(f), step, max)
		}
		got := th.next(at(w.asked), burst)
		if !got.Equal(at(w.startAt)) {
			t.Fatalf("spawn %d asked at +%s: starts at +%s, want +%s", i+1, w.asked, got.Sub(t0), w.startAt)
		}
		th = th.take(got, burst)
		if th.level != w.level {
			t.Fatalf("spawn %d: level %s, want %s", i+1, th.level, w.level)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Spec{Argv: []string{"/bin/true"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("plain spec: %v", err)
	}
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{}, "binary-path"},
		{Spec{Argv: []string{"/bin/true"}, Credential: &syscall.Credential{Uid: 0, Gid: 100}}, "root"},
		{Spec{Argv: []string{"/bin/true"}, Hostname: "x"}, "uts"},
	} {
		if err := tc.spec.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error about %s", tc.spec, err, tc.want)
		}
	}
}

// TestShedderClosesTheOldestSlowReaders: answers waiting for readers that
// never read are bounded in count and bytes; the oldest go first, and the
// newest client's answer goes through.
func TestShedderClosesTheOldestSlowReaders(t *testing.T) {
	sh := newShedder(3, 100)
	type client struct {
		server *shedConn
		peer   net.Conn
		done   chan error
	}
	connect := func(answer int) client {
		a, b := net.Pipe() // a write blocks until the peer reads: a slow reader
		c := client{server: sh.add(a), peer: b, done: make(chan error, 1)}
		go func() {
			_, err := c.server.Write(make([]byte, answer))
			c.done <- err
		}()
		return c
	}
	waitHeld := func(n int) {
		t.Helper()
		deadline := time.Now().Add(testkit.Deadline)
		for {
			sh.mu.Lock()
			held := sh.held
			sh.mu.Unlock()
			if held == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("held %d bytes, want %d", held, n)
			}
			runtime.Gosched()
		}
	}
	first := connect(60)
	waitHeld(60)
	second := connect(30)
	waitHeld(90)
	// 60 more bytes would hold 150 > 100: the oldest slow reader goes.
	third := connect(60)
	if err := <-first.done; err == nil {
		t.Fatal("the oldest slow reader kept its answer")
	}
	waitHeld(90)
	fourth := connect(5)
	waitHeld(95)
	// Three live connections are the cap: room for another closes the
	// oldest left.
	if n := sh.shed(); n != 1 {
		t.Fatalf("shed %d connections to make room, want 1", n)
	}
	if err := <-second.done; err == nil {
		t.Fatal("the second slow reader kept its answer")
	}
	// The newest is served in full once its reader reads.
	go io.Copy(io.Discard, third.peer)
	if err := <-third.done; err != nil {
		t.Fatalf("the newest client's answer: %v", err)
	}
	go io.Copy(io.Discard, fourth.peer)
	if err := <-fourth.done; err != nil {
		t.Fatalf("a small answer: %v", err)
	}
	sh.remove(third.server)
	sh.remove(fourth.server)
	waitHeld(0)
}

// What connections already closed to make room still hold is on its way
// out: it never gets a newer connection closed.
func TestShedderDoesNotCountWhatClosedConnectionsStillHold(t *testing.T) {
	sh := newShedder(100, 100)
	var conns []*shedConn
	for range 4 {
		a, b := net.Pipe()
		defer b.Close()
		conns = append(conns, sh.add(a))
	}
	// The two oldest were shed while their 90-byte writes were blocked:
	// their bytes are still counted until those writes return.
	sh.mu.Lock()
	for _, c := range conns[:2] {
		c.shed, c.held = true, 90
		sh.held += 90
	}
	sh.mu.Unlock()
	// The newest wants room for 60 bytes: nothing live holds anything, so
	// nothing else needs to close.
	if n := sh.shedFor(conns[3], 60); n != 0 {
		t.Errorf("closed %d more connections for 60 bytes, counting what closed ones hold", n)
	}
	if conns[2].shed {
		t.Error("a live connection was closed")
	}
}
