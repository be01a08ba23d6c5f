// Command mongowire is a MongoDB-wire server for the tests of the
// mongodb:// monitor: FerretDB's embeddable package with its SQLite
// backend, storing into a directory. It lives in its own Go module so that
// the Emperor never depends on FerretDB.
//
//	mongowire -listen 127.0.0.1:27017 -dir /tmp/data
//
// Once it accepts connections it prints one line, "mongodb://HOST:PORT/",
// on stdout. It stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "TCP address to listen on")
	dir := flag.String("dir", "", "directory for the SQLite databases (required)")
	verbose := flag.Bool("v", false, "log FerretDB's messages")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "mongowire: -dir is required")
		os.Exit(2)
	}
	if err := run(*listen, *dir, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "mongowire:", err)
		os.Exit(1)
	}
}

func run(listen, dir string, verbose bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	level := slog.LevelError
	if verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	// The listener is open once New returns; MongoDBURI names its real port.
	fmt.Println(f.MongoDBURI())
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		if err != nil && ctx.Err() == nil {
			return err
		}
	case <-time.After(10 * time.Second):
		return fmt.Errorf("did not stop within 10 s")
	}
	return nil
}
