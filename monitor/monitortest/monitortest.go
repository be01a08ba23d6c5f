// Package monitortest provides a fake monitor for tests of the Emperor: the
// test pushes events by hand.
package monitortest

import (
	"context"

	"github.com/emperor-dev/emperor/monitor"
)

// Monitor is a monitor whose events come from its Events channel. RunFunc
// and RescanFunc, when set, replace the default behaviour.
type Monitor struct {
	Name       string
	Events     chan monitor.Event
	Ready      chan<- string
	RunFunc    func(ctx context.Context, out chan<- monitor.Event) error
	RescanFunc func()
}

var _ monitor.Monitor = (*Monitor)(nil)

// New returns a fake monitor named name with a buffered Events channel.
func New(name string) *Monitor {
	return &Monitor{Name: name, Events: make(chan monitor.Event, 64)}
}

// ID implements monitor.Monitor.
func (m *Monitor) ID() string { return "fake://" + m.Name }

// String implements monitor.Monitor.
func (m *Monitor) String() string { return m.ID() }

// Rescan implements monitor.Monitor.
func (m *Monitor) Rescan() {
	if m.RescanFunc != nil {
		m.RescanFunc()
	}
}

// Run forwards Events until ctx is done, filling in the Key's monitor ID.
func (m *Monitor) Run(ctx context.Context, out chan<- monitor.Event) error {
	if m.RunFunc != nil {
		return m.RunFunc(ctx, out)
	}
	if m.Ready != nil {
		m.Ready <- m.ID()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-m.Events:
			ev.Key.Monitor = m.ID()
			select {
			case out <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}
