package vassal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/emperor-dev/emperor/protocol"
)

// maxFifos is how many master-fifo slots there are (0 to 9).
const maxFifos = 10

// fifoCommand is one letter read from the master FIFO in slot.
type fifoCommand struct {
	slot   int
	letter byte
}

func (fifoCommand) isEvent() {}

// openFifo creates the FIFO at path (0600) when missing and opens it for
// reading and writing, so that it never reads EOF when a writer leaves.
func openFifo(path string) (*os.File, error) {
	err := unix.Mkfifo(path, 0o600)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("master-fifo %s: %w", path, os.NewSyscallError("mkfifo", err))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("master-fifo: %w", err)
	}
	if fi.Mode().Type() != os.ModeNamedPipe {
		return nil, fmt.Errorf("master-fifo %s: exists and is not a FIFO", path)
	}
	// A FIFO opened by os.OpenFile is non-blocking and registered with
	// the runtime poller: Read waits without holding a thread, and Close
	// wakes it.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("master-fifo: %w", err)
	}
	return f, nil
}

// openFifos opens every master-fifo and starts a reader for each. The
// returned function closes them.
func (r *runner) openFifos(paths []string) (func(), error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for i, p := range paths {
		f, err := openFifo(p)
		if err != nil {
			closeAll()
			return nil, err
		}
		files = append(files, f)
		r.log.Info("master fifo open", "slot", i, "path", p, "active", i == 0)
	}
	for i, f := range files {
		go func() {
			buf := make([]byte, 64)
			for {
				n, err := f.Read(buf)
				for _, b := range buf[:n] {
					r.post(fifoCommand{slot: i, letter: b})
				}
				if err != nil {
					return
				}
			}
		}()
	}
	return closeAll, nil
}

// fifoSaid runs a master FIFO command (see the package doc for the
// letters). Commands written to a FIFO that is not the active slot are
// ignored.
func (r *runner) fifoSaid(ev fifoCommand) {
	switch ev.letter {
	case '\n', '\r', ' ', '\t':
		return
	}
	if ev.slot != r.activeFifo {
		r.log.Warn("master fifo: command on an inactive slot ignored", "slot", ev.slot, "active", r.activeFifo, "command", string(rune(ev.letter)))
		return
	}
	r.log.Info("master fifo command", "command", string(rune(ev.letter)))
	switch l := ev.letter; {
	case l == 'q':
		r.stop("master fifo: graceful stop", nil)
	case l == 'Q':
		r.brutal = true
		r.stop("master fifo: brutal stop", nil)
	case l == 'r', l == 'w':
		r.emperorSaid(protocol.Reload)
	case l == 'R':
		if !r.stopping {
			r.brutalReload = true
			r.emperorSaid(protocol.Reload)
		}
	case l == 's':
		doc := r.statsDoc()
		doc.fillQueues()
		data, err := json.Marshal(doc)
		if err != nil {
			r.log.Error("master fifo: stats", "err", err)
			return
		}
		r.log.Info("stats", "json", string(data))
	case l == 'p':
		r.paused = !r.paused
		sig, what := syscall.SIGCONT, "resumed"
		if r.paused {
			sig, what = syscall.SIGSTOP, "paused"
		}
		for _, g := range r.gens {
			for _, w := range g.workers {
				if w.cmd != nil {
					if err := signalGroup(w.pid, sig); err != nil {
						r.log.Error("cannot signal worker", "gen", g.id, "worker", w.slot, "pid", w.pid, "err", err)
					}
				}
			}
		}
		r.log.Info("workers "+what, "signal", unix.SignalName(sig))
	case l == 'B':
		r.send(protocol.Reinforcements)
	case l >= '0' && l <= '9':
		n := int(l - '0')
		if n >= r.fifoCount {
			r.log.Warn("master fifo: no such slot", "slot", n, "slots", r.fifoCount)
			return
		}
		r.activeFifo = n
		r.log.Info("master fifo: active slot changed", "slot", n)
	default:
		r.log.Warn("master fifo: unknown command", "command", fmt.Sprintf("%q", rune(l)))
	}
}
