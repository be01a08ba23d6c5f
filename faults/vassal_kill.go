package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A vassal killed with SIGKILL is respawned and serves again.
func init() {
	register(Scenario{
		Order: 10, Name: "vassal-sigkill",
		Fault: "a vassal (our runtime, one hello worker) SIGKILLed",
		Hold:  "respawned by the Emperor; time until it serves again",
		Run: func(ctx context.Context, env *Env) (Result, error) {
			dir := env.Mkdir("vassals")
			port, err := FreePort()
			if err != nil {
				return Result{}, err
			}
			url := fmt.Sprintf("http://127.0.0.1:%d/", port)
			conf := fmt.Sprintf("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nworker-exec = %s\n", port, env.Hello)
			if err := os.WriteFile(filepath.Join(dir, "app.ini"), []byte(conf), 0o644); err != nil {
				return Result{}, err
			}
			em, err := env.StartEmperor("--emperor", dir, "--binary-path", env.Vassal)
			if err != nil {
				return Result{}, err
			}
			line, err := em.WaitLog(ctx, 0, `msg="vassal running"`, "vassal=app.ini")
			if err != nil {
				return Result{}, err
			}
			if _, ok := Poll(ctx, func() bool { _, err := Get(url); return err == nil }); !ok {
				return Result{}, fmt.Errorf("%s never served", url)
			}
			pid := 0
			fmt.Sscan(Field(line, "pid"), &pid)
			mark := em.LogSize()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				return Result{}, err
			}
			began := time.Now()
			if _, err := em.WaitLog(ctx, mark, `msg="vassal running"`, "vassal=app.ini"); err != nil {
				return Result{Measured: "not respawned: " + err.Error()}, nil
			}
			_, ok := Poll(ctx, func() bool { b, err := Get(url); return err == nil && strings.TrimSpace(b) != "" })
			took := time.Since(began)
			if !ok {
				return Result{Measured: "respawned, never served again"}, nil
			}
			return Result{Measured: "serving again after " + Ms(took), Held: true}, nil
		},
	})
}
