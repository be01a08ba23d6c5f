package compat_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emperor-dev/emperor/internal/testenv"
)

// TestThrowawayHost checks the host the corpus runs in: a daemon is followed,
// a refusal is seen with its status and output, the host has the users, the
// hostname, the loopback and the read-only sysctls it promises, and nothing
// it writes or starts outlives it on the real host.
func TestThrowawayHost(t *testing.T) {
	testenv.Root(t)
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	leak := "/etc/compat-host-leak-" + filepath.Base(root)
	tests := []struct {
		name    string
		script  string
		started bool
		check   func(t *testing.T, run hostRun)
	}{
		{"daemon", "sleep 600 </dev/null >/dev/null 2>&1 & exit 0", true, func(t *testing.T, run hostRun) {
			if !run.Followed {
				t.Error("the daemon left by a parent that exited 0 was not followed")
			}
		}},
		{"refusal", "echo 'bad option: --nope' >&2; exit 3", false, func(t *testing.T, run hostRun) {
			if run.Status != "exit status 3" || !strings.Contains(run.Output, "bad option: --nope") {
				t.Errorf("status %q, output %q; want exit status 3 and the message", run.Status, run.Output)
			}
			if got := firstErrorLine(run.Output, run.Status); got != "bad option: --nope [exit status 3]" {
				t.Errorf("first error line %q", got)
			}
		}},
		{"dead daemon", "(sleep 0.2; exit 1) & exit 0", false, func(t *testing.T, run hostRun) {
			if !run.Followed || run.Status != "exit status 1" {
				t.Errorf("followed %v, status %q; want the daemon's exit status 1", run.Followed, run.Status)
			}
		}},
		{"host", "touch " + leak + "; hostname; id uwsgi; id cheshire; cat /sys/class/net/lo/flags; " +
			"v=$(cat /proc/sys/kernel/dmesg_restrict); if echo $v > /proc/sys/kernel/dmesg_restrict; then echo sysctl-writable; fi; " +
			"test -d /srv/compat && echo dir-made; pwd; exit 0", false, func(t *testing.T, run hostRun) {
			for _, want := range []string{"corpus-host", "uid=2901(uwsgi)", "uid=2905(cheshire)", "0x9", "dir-made", "/srv/compat\n"} {
				if !strings.Contains(run.Output, want) {
					t.Errorf("host output lacks %q:\n%s", want, run.Output)
				}
			}
			if strings.Contains(run.Output, "sysctl-writable") {
				t.Error("/proc/sys is writable inside the host")
			}
			if _, err := os.Stat(leak); !os.IsNotExist(err) {
				t.Errorf("a file written in the host reached the real host: %s (%v)", leak, err)
				os.Remove(leak)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runDir := filepath.Join(root, string(rune('a'+i)))
			if err := os.Mkdir(runDir, 0o700); err != nil {
				t.Fatal(err)
			}
			spec := hostSpec{
				BinDir: bin, Users: corpusUsers, Dirs: []hostDir{dir("/srv/compat")},
				Argv: []string{"/bin/sh", "-c", tt.script}, Env: programEnv, Cwd: "/srv/compat",
				// Long beside the 0.2 s the dead daemon lives; only the
				// daemon that stays waits it out.
				Settle: int64(10 * time.Second),
			}
			run, err := runInHost(t.Context(), runDir, spec)
			if err != nil {
				testenv.Missing(t, "a throwaway host: "+err.Error())
			}
			if run.Started != tt.started {
				t.Errorf("started = %v, want %v (status %q, output %q)", run.Started, tt.started, run.Status, run.Output)
			}
			if len(run.Leaked) > 0 {
				t.Errorf("processes outlived their host: %v", run.Leaked)
			}
			tt.check(t, run)
		})
	}
	if mounts, err := mountsUnder(root); err != nil || len(mounts) > 0 {
		t.Errorf("mounts left on the real host: %v %v", mounts, err)
	}
}
