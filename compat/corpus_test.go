package compat_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
)

// settle is how long a program must keep running to count as started. A
// refusal (an unknown option, a file that cannot be opened, a port already
// taken) happens while the config is read, within milliseconds even on a
// loaded 2-core box; 5 s is some hundred times that. A longer settle can
// only delay a verdict, never turn a refusal into a start, so it errs on the
// side of catching slow refusals.
const settle = 5 * time.Second

// probeGrace is how much longer a started program has to spawn the probe
// vassal: a condition waited for, so generous; only a run where the vassal
// never comes waits it out.
const probeGrace = 20 * time.Second

// parallel is how many hosts run at once. They idle through most of their
// settle time, so this keeps the whole test near a minute on 2 cores.
const parallel = 8

// uwsgiPath is the real uWSGI 2.0 the corpus is compared with.
const uwsgiPath = "/usr/bin/uwsgi"

func TestMain(m *testing.M) {
	if os.Getenv(hostEnv) == "1" {
		os.Exit(hostMain())
	}
	os.Exit(m.Run())
}

// impl is one implementation under test: its program inside the host.
type impl struct {
	name    string
	program string
}

// verdict is one config run under one implementation.
type verdict struct {
	started  bool
	followed bool   // started: its daemon was running (it daemonized)
	probed   bool   // the host held a probe vassal
	vassalUp bool   // the probe vassal was spawned
	line     string // the first error line of a refusal
	err      error  // the host could not be built or watched
	leaked   []int
}

func (v verdict) String() string {
	switch {
	case v.err != nil:
		return "host error"
	case v.started && v.followed:
		return "starts (daemon)"
	case v.started:
		return "starts"
	}
	return "refuses"
}

// TestCorpus runs every real Emperor config of the corpus under the real
// uWSGI and under ours, each in its own throwaway host, and checks that every
// config uWSGI starts, ours starts.
func TestCorpus(t *testing.T) {
	testenv.Root(t)
	corpus := corpusDir(t)
	if _, err := os.Stat(uwsgiPath); err != nil {
		testenv.Missing(t, "real uWSGI 2.0 at "+uwsgiPath+": "+err.Error())
	}
	if err := checkCovered(corpus); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	probeHost(t, root)
	bin := buildOurs(t, root)
	impls := []impl{{"uWSGI", uwsgiPath}, {"ours", binMount + "/emperor"}}

	type job struct {
		c    int
		i    int
		spec hostSpec
	}
	var jobs []job
	results := make([][]verdict, len(corpusCases))
	only := onlyCases(t)
	for ci, c := range corpusCases {
		results[ci] = make([]verdict, len(impls))
		if c.leftOut != "" || !only(c) {
			continue
		}
		for ii, im := range impls {
			spec, err := c.spec(corpus, im.program)
			if err != nil {
				t.Fatalf("%s: %v", c.file, err)
			}
			spec.BinDir = bin
			jobs = append(jobs, job{ci, ii, spec})
		}
	}

	keep := os.Getenv("EMPEROR_CORPUS_LOGS")
	if keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			t.Fatalf("EMPEROR_CORPUS_LOGS: %v", err)
		}
	}
	start := time.Now()
	queue := make(chan job)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for j := range queue {
				dir := filepath.Join(root, fmt.Sprintf("%s-%s", corpusCases[j.c].number(), impls[j.i].name))
				results[j.c][j.i] = runOne(t.Context(), dir, j.spec, keep)
			}
		})
	}
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	wg.Wait()
	t.Logf("%d runs in %s (settle %s, %d at a time)", len(jobs), time.Since(start).Round(time.Second), settle, parallel)

	title := fmt.Sprintf("Emperor corpus: %s (%s) and ours (this checkout), settle %s, %s",
		uwsgiVersion(t), uwsgiPath, settle, time.Now().UTC().Format(time.DateTime+" UTC"))
	table := corpusTable(title, impls, results, only)
	t.Log("\n" + table)
	if path := os.Getenv("EMPEROR_CORPUS_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Errorf("EMPEROR_CORPUS_REPORT: %v", err)
		}
	}

	for ci, c := range corpusCases {
		if c.leftOut != "" || !only(c) {
			continue
		}
		t.Run(c.number(), func(t *testing.T) {
			uw, ours := results[ci][0], results[ci][1]
			for ii, v := range results[ci] {
				if v.err != nil {
					t.Errorf("%s under %s: %v", c.file, impls[ii].name, v.err)
				}
				if len(v.leaked) > 0 {
					t.Errorf("%s under %s: processes of its host outlived it: %v", c.file, impls[ii].name, v.leaked)
				}
			}
			if uw.started && !ours.started && ours.err == nil {
				t.Errorf("%s: uWSGI 2.0 %s, ours refuses: %s", c.file, uw, ours.line)
			}
			if c.waits != "" {
				if ours.vassalUp {
					t.Errorf("%s: ours spawned the probe vassal %s, but the config says %s", c.file, c.probe, c.waits)
				}
				return
			}
			if uw.vassalUp && ours.started && !ours.vassalUp {
				t.Errorf("%s: uWSGI 2.0 spawns the vassal %s, ours starts but does not spawn it within %s", c.file, c.probe, settle+probeGrace)
			}
		})
	}
	if mounts, err := mountsUnder(root); err != nil || len(mounts) > 0 {
		t.Errorf("mounts of the throwaway hosts left on the real host: %v %v", mounts, err)
	}
}

// runOne runs one spec in a fresh host and turns what it saw into a verdict.
// With keep set, the run's output is also written to keep/<dir's name>.log.
func runOne(ctx context.Context, dir string, spec hostSpec, keep string) verdict {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return verdict{err: err}
	}
	run, err := runInHost(ctx, dir, spec)
	if keep != "" {
		text := fmt.Sprintf("argv: %q\nstarted: %v, followed a daemon: %v, %s\nhost error: %v\n--- output\n%s--- logs\n%s",
			spec.Argv, run.Started, run.Followed, run.Status, err, run.Output, run.Logs)
		if werr := os.WriteFile(filepath.Join(keep, filepath.Base(dir)+".log"), []byte(text), 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	v := verdict{err: err, leaked: run.Leaked, started: run.Started, followed: run.Followed,
		probed: spec.Probe != "", vassalUp: run.VassalUp}
	if err == nil && !run.Started {
		v.line = firstErrorLine(run.Output+run.Logs, run.Status)
	}
	return v
}

// onlyCases reads $EMPEROR_CORPUS_ONLY, a regexp of corpus file names to
// run (all when empty): for a quick look at a few configs.
func onlyCases(t *testing.T) func(corpusCase) bool {
	t.Helper()
	expr := os.Getenv("EMPEROR_CORPUS_ONLY")
	if expr == "" {
		return func(corpusCase) bool { return true }
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		t.Fatalf("EMPEROR_CORPUS_ONLY: %v", err)
	}
	return func(c corpusCase) bool { return re.MatchString(c.file) }
}

// corpusDir finds the corpus (testenv.Corpus).
func corpusDir(t *testing.T) string { return testenv.Corpus(t) }

// checkCovered fails when a corpus file is neither a case nor a case's config:
// a config added to the corpus must get its host here, not be skipped.
func checkCovered(corpus string) error {
	used := map[string]bool{}
	for _, c := range corpusCases {
		used[c.file] = true
		if c.config != "" {
			used[c.config] = true
		}
	}
	ents, err := os.ReadDir(corpus)
	if err != nil {
		return err
	}
	var missing []string
	for _, e := range ents {
		switch filepath.Ext(e.Name()) {
		case ".ini", ".json", ".argv":
			if !used[e.Name()] {
				missing = append(missing, e.Name())
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("corpus files with no host in cases_test.go: %s", strings.Join(missing, ", "))
	}
	return nil
}

// probeHost runs /bin/true in a throwaway host, to skip with a reason where
// namespaces, overlayfs or pivot_root are not available.
func probeHost(t *testing.T, root string) {
	t.Helper()
	dir := filepath.Join(root, "probe")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "probe-bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	run, err := runInHost(t.Context(), dir, hostSpec{BinDir: bin, Argv: []string{"/bin/true"}, Cwd: "/", Settle: int64(time.Minute)})
	if err != nil {
		testenv.Missing(t, "a throwaway host (mount, pid, net, UTS namespaces, an overlay of /, pivot_root): "+err.Error())
	}
	if run.Started || run.Status != "exit status 0" {
		t.Fatalf("/bin/true in a throwaway host: started=%v, %s; output %q", run.Started, run.Status, run.Output)
	}
}

// uwsgiVersion is what the real uWSGI says its version is.
func uwsgiVersion(t *testing.T) string {
	out, err := exec.CommandContext(t.Context(), uwsgiPath, "--version").Output()
	if err != nil {
		return "uWSGI (version unknown: " + err.Error() + ")"
	}
	return "uWSGI " + strings.TrimSpace(string(out))
}

// buildOurs builds our emperor and vassal from this checkout.
func buildOurs(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(root, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/emperor", "./cmd/vassal")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/emperor ./cmd/vassal: %v\n%s", err, out)
	}
	return bin
}
