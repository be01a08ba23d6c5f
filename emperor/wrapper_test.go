package emperor_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emperor-dev/emperor/emperor"
	"github.com/emperor-dev/emperor/monitor"
)

// uWSGI execvp's each emperor-wrapper-override, then emperor-wrapper (or
// binary-path), then each emperor-wrapper-fallback, until one runs. Ours
// picks the first that can run before the fork and says which.
func TestWrapperFallbackRunsWhenTheOthersCannot(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	notExec := filepath.Join(elsewhere, "not-executable")
	writeFile(t, notExec, "#!/bin/sh\nexit 1\n") // 0644
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.WrapperOverride = []string{"no-such-override-in-path", notExec}
		o.Binary = filepath.Join(elsewhere, "no-such-binary")
		o.WrapperFallback = []string{os.Args[0], "/never/tried"}
	}})
	writeFile(t, filepath.Join(dir, "app.ini"), h.vassalConfig("name = app"))
	r := h.waitReport("the fallback runs", func(r report) bool { return r.Event == "start" && r.Name == "app" })
	if want := []string{os.Args[0], "--ini", "app.ini"}; !slices.Equal(r.Argv, want) {
		t.Errorf("argv = %q, want %q", r.Argv, want)
	}
	n := h.WaitState("app.ini", emperor.Running)
	if want := "running emperor-wrapper-fallback " + os.Args[0]; !strings.Contains(n.Reason, want) {
		t.Errorf("spawn line %q does not say %q", n.Reason, want)
	}
}

func TestNoWrapperCanRunFailsTheSpawn(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) {
		o.WrapperOverride = []string{"no-such-override-in-path"}
		o.Wrapper = filepath.Join(elsewhere, "no-such-wrapper")
		o.WrapperFallback = []string{filepath.Join(elsewhere, "no-such-fallback")}
	}})
	writeFile(t, filepath.Join(dir, "app.ini"), h.vassalConfig("name = app"))
	n := h.WaitNote("a penalised failed spawn", func(n emperor.Note) bool {
		return n.Key.Name == "app.ini" && n.To == emperor.Waiting && strings.Contains(n.Reason, "respawn in")
	})
	for _, want := range []string{
		"spawn failed: no vassal binary can run: tried",
		"emperor-wrapper-override no-such-override-in-path (not found in PATH",
		"emperor-wrapper " + filepath.Join(elsewhere, "no-such-wrapper") + " (",
		"emperor-wrapper-fallback " + filepath.Join(elsewhere, "no-such-fallback") + " (",
	} {
		if !strings.Contains(n.Reason, want) {
			t.Errorf("reason %q lacks %q", n.Reason, want)
		}
	}
	if line := h.Log.WaitFor(t, "spawn failed", "vassal=app.ini", "no vassal binary can run"); line == "" {
		t.Error("no log line for the failed spawn")
	}
}

// An executable config is run; its output is the config (exec://PATH).
func TestMagicExecRunsExecutableConfigs(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, opts: func(o *emperor.Options) { o.MagicExec = true }})
	gen := filepath.Join(dir, "gen.ini")
	script := "#!/bin/sh\ncat <<EOF\n" + h.vassalConfig("name = generated-$(basename \"$0\")") + "EOF\n"
	if err := os.WriteFile(gen, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	spaced := filepath.Join(dir, "my app.ini")
	if err := os.WriteFile(spaced, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "plain.ini"), h.vassalConfig("name = plain"))

	r := h.waitReport("the script's config runs", func(r report) bool { return r.Event == "start" && r.Name == "generated-gen.ini" })
	if want := []string{os.Args[0], "--ini", "exec://" + gen}; !slices.Equal(r.Argv, want) {
		t.Errorf("argv = %q, want %q", r.Argv, want)
	}
	r = h.waitReport("a script with a space in its name", func(r report) bool { return r.Event == "start" && r.Name == "generated-my app.ini" })
	if want := "exec://'" + spaced + "'"; r.Argv[len(r.Argv)-1] != want {
		t.Errorf("argv = %q, want it to end with %q", r.Argv, want)
	}
	r = h.waitReport("the plain config runs", func(r report) bool { return r.Event == "start" && r.Name == "plain" })
	if want := []string{os.Args[0], "--ini", "plain.ini"}; !slices.Equal(r.Argv, want) {
		t.Errorf("argv = %q, want %q", r.Argv, want)
	}
	n := h.WaitState("gen.ini", emperor.Running)
	if !strings.Contains(n.Reason, "exec://"+gen+" (emperor-magic-exec)") {
		t.Errorf("spawn line %q does not say the config is run", n.Reason)
	}
}

// Tyrant mode: the tenant's program runs as the tenant, never as root; a
// root-owned wrapper only root may run is skipped for them.
func TestMagicExecInTyrantModeRunsAsTheOwner(t *testing.T) {
	var rootOnly string
	h, pub, vassals := tyrantEmperor(t, func(o *emperor.Options) {
		o.MagicExec = true
		rootOnly = filepath.Join(filepath.Dir(o.Binary), "root-only.test")
		o.WrapperOverride = []string{rootOnly}
		o.WrapperFallback = []string{o.Binary}
		o.Binary = ""
		o.Wrapper = "no-such-wrapper-in-path"
	})
	b, err := os.ReadFile(filepath.Join(pub, "vassal.test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rootOnly, b, 0o700); err != nil {
		t.Fatal(err)
	}
	const tenant = 65534
	path := filepath.Join(vassals, "app.ini")
	script := "#!/bin/sh\ncat <<EOF\n" + h.vassalConfig("name = app-$(id -u)") + "EOF\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, tenant, tenant); err != nil {
		t.Fatal(err)
	}
	r := h.waitReport("the tenant's script's config", func(r report) bool { return r.Event == "start" })
	if r.Name != "app-65534" || r.UID != tenant {
		t.Errorf("vassal %q runs as uid %d: want the script run as and the vassal run as %d", r.Name, r.UID, tenant)
	}
	if got := r.Argv[len(r.Argv)-1]; got != "exec://"+path {
		t.Errorf("argv %q, want it to end with exec://%s", r.Argv, path)
	}
	n := h.WaitState("app.ini", emperor.Running)
	if !strings.Contains(n.Reason, "running emperor-wrapper-fallback") {
		t.Errorf("spawn line %q: the tenant cannot run the root-only override, the fallback should run", n.Reason)
	}
}

// A config with an emperor-extra-extension is passed as --config FILE.
func TestExtraExtensionConfigComesUp(t *testing.T) {
	dir := t.TempDir()
	h := startEmperor(t, setup{dirs: []string{dir}, mopts: monitor.Options{Extensions: []string{".conf"}},
		opts: func(o *emperor.Options) { o.ExtraExtensions = []string{".conf"} }})
	writeFile(t, filepath.Join(dir, "app.conf"), h.vassalConfig("name = conf"))
	r := h.waitReport("the .conf vassal", func(r report) bool { return r.Event == "start" && r.Name == "conf" })
	if want := []string{os.Args[0], "--config", "app.conf"}; !slices.Equal(r.Argv, want) {
		t.Errorf("argv = %q, want %q", r.Argv, want)
	}
}
