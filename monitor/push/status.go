package push

import "sync"

// Status is what a push monitor reports about its journal, for the stats
// server and metrics (monitor.Reporter). The monitor's goroutine updates it
// through Desired; any goroutine reads it. The zero value is ready; a nil
// *Status ignores updates.
type Status struct {
	mu        sync.Mutex
	file      string
	pending   int
	errors    uint64
	lastErr   string
	keptAside string
}

// Status returns the figures:
//
//   - journal_file: the journal's path ("" without emperor-state-dir);
//   - journal_pending: changes accepted and not yet durable, so neither
//     applied nor acknowledged (0 when healthy);
//   - journal_errors: failed journal writes since the monitor started;
//   - journal_last_error: the error while writes fail, else "";
//   - journal_kept_aside: where a journal found damaged at start was kept,
//     else "".
func (s *Status) Status() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{
		"journal_file":       s.file,
		"journal_pending":    s.pending,
		"journal_errors":     s.errors,
		"journal_last_error": s.lastErr,
		"journal_kept_aside": s.keptAside,
	}
}

func (s *Status) update(fn func(*Status)) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}
