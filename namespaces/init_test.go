package namespaces

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// The test binary is its own init stage, as the Emperor's binary is.
func TestMain(m *testing.M) {
	if IsInit() {
		Init()
	}
	os.Exit(m.Run())
}

// startInit starts this binary as an init stage and releases it with cfg.
func startInit(t *testing.T, cfg *InitConfig) (*os.Process, error) {
	t.Helper()
	s, err := NewStage()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, e := s.ChildFiles()
	cfg.KeepFds = 3
	p, err := os.StartProcess("/proc/self/exe", []string{"init"}, &os.ProcAttr{
		Env:   append(os.Environ(), Env(3, 4)),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, c, e},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.CloseChildEnds()
	return p, s.Release(cfg, time.Now().Add(30*time.Second))
}

func TestInitExecsTheVassal(t *testing.T) {
	p, err := startInit(t, &InitConfig{Argv: []string{"sh", "-c", "exit 7"}, ParentPid: os.Getpid()})
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	st, err := p.Wait()
	if err != nil || st.ExitCode() != 7 {
		t.Errorf("vassal exit %v, %v; want status 7 from sh", st, err)
	}
}

func TestInitReportsTheFailingStep(t *testing.T) {
	p, err := startInit(t, &InitConfig{Argv: []string{"/nonexistent/vassal"}})
	p.Wait()
	var ie *InitError
	if !errors.As(err, &ie) || ie.Step != "exec /nonexistent/vassal" || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Release = %v, want an exec step error with ENOENT", err)
	}
	p, err = startInit(t, &InitConfig{Argv: []string{"no-such-binary-anywhere"}})
	p.Wait()
	if !errors.As(err, &ie) || ie.Step != "lookup" {
		t.Errorf("Release = %v, want a lookup step error", err)
	}
	p, err = startInit(t, &InitConfig{Argv: []string{"true"}, ParentPid: 1})
	p.Wait()
	if !errors.As(err, &ie) || ie.Step != "parent check" {
		t.Errorf("Release = %v, want the parent check to fail", err)
	}
}
