package vassal

import (
	"time"

	"github.com/emperor-dev/emperor/internal/procwait"
	"github.com/emperor-dev/emperor/protocol"
)

// event is what the loop (loop.go) receives. The loop's own events are
// here; daemons.go, fifo.go, stats.go and supervise.go define theirs next
// to their handlers.
type event interface{ isEvent() }

// emperorByte is a control byte from the Emperor.
type emperorByte struct{ b protocol.Byte }

// emperorLost: the control channel failed or was closed.
type emperorLost struct{ err error }

// configLoaded is the result of reading the config again for a reload.
type configLoaded struct {
	settings Settings
	err      error
}

// workerExited: a worker is dead but not reaped; the loop closes reap once
// it will never signal the worker again.
type workerExited struct {
	gen, slot, pid int
	exit           procwait.Status
	err            error
	stderr         string // the last line the worker wrote to stderr
	reap           chan struct{}
}

// respawnDue: a respawn backoff is over. seq tells stale timers apart.
type respawnDue struct{ gen, slot, seq int }

// mercyExpired: a stopping generation had worker-reload-mercy to exit.
type mercyExpired struct{ gen int }

// probed is one readiness probe outcome for a generation.
type probed struct {
	gen     int
	forSlot int // a replacement worker's probe (see recycle), or 0
	outcome probeOutcome
}

// readyTimedOut: ready-timeout passed since the vassal started.
type readyTimedOut struct{ after time.Duration }

// heartbeatDue: time to send the next heartbeat. seq tells stale timers
// apart.
type heartbeatDue struct{ seq int }

// notified is an sd_notify message from a process whose process group is
// pgrp.
type notified struct {
	msg  notifyMsg
	pgrp int
}

// netSample is one reading of the TCP table, for idle and vassal-sos.
type netSample struct {
	at      time.Time
	entries []tcpEntry
	err     error
}

func (emperorByte) isEvent()   {}
func (emperorLost) isEvent()   {}
func (configLoaded) isEvent()  {}
func (workerExited) isEvent()  {}
func (respawnDue) isEvent()    {}
func (mercyExpired) isEvent()  {}
func (probed) isEvent()        {}
func (readyTimedOut) isEvent() {}
func (notified) isEvent()      {}
func (netSample) isEvent()     {}
func (heartbeatDue) isEvent()  {}
