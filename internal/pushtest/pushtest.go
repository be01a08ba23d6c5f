// Package pushtest runs an in-process Emperor whose vassals are real uWSGI
// for the push monitors' end-to-end tests (emperor.go). Monitors alone run
// under monitortest.Harness; this file keeps only what emperor.go needs.
package pushtest

import (
	"log/slog"
	"sync"

	"github.com/emperor-dev/emperor/internal/testkit"
)

// Wait is the deadline of every wait: testkit.Deadline.
const Wait = testkit.Deadline

// Logs is the Emperor's log capture: a testkit.Log, which locks itself (mu
// is held by String, in emperor.go, and guards nothing else).
type Logs struct {
	mu  sync.Mutex
	buf testkit.Log
}

// Write implements io.Writer.
func (l *Logs) Write(p []byte) (int, error) { return l.buf.Write(p) }

// Logger returns a debug-level text logger writing into l.
func (l *Logs) Logger() *slog.Logger { return l.buf.Logger() }

// Capture is the capture itself, to search and wait on.
func (l *Logs) Capture() *testkit.Log { return &l.buf }
