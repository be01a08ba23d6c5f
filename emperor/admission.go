package emperor

import "time"

// Admission control keeps spawns from becoming a fork storm: at most
// MaxStarting vassals are "starting" at once. A vassal starts when its spawn
// is queued on the spawner thread and stops starting when it first speaks
// the protocol (byte 1, 5 or 17), exits, or has been starting for
// StartWindow (a program that never speaks the protocol). A spawn beyond
// the limit waits in the admission queue, in order, in state waiting; the
// loop itself never waits. This replaces uWSGI's global throttle, which
// sleeps the whole Emperor for a second or more on every spawn (bugs B7,
// B42); the first scan goes through the same gate, so 500 vassals boot as
// fast as the machine can start them, MaxStarting at a time.

// spawn asks for v to be spawned: through the throttle (throttle.go) once
// the first scan is done, then now if a start slot is free, otherwise when
// one frees up.
func (e *Emperor) spawn(v *vassal) {
	if v.queued || v.throttled {
		return
	}
	if e.throttling() {
		e.throttleSpawn(v)
		return
	}
	e.admitStart(v)
}

// admitStart starts v if a start slot is free, or queues it for one.
func (e *Emperor) admitStart(v *vassal) {
	if e.opts.MaxStarting > 0 && e.starting >= e.opts.MaxStarting {
		v.queued = true
		e.admission = append(e.admission, admissionTicket{v: v, gen: v.gen})
		return
	}
	e.startSpawn(v)
}

// admissionTicket is a place in the admission queue, valid while the vassal
// stays in the Waiting state it was queued in.
type admissionTicket struct {
	v   *vassal
	gen uint64
}

// admit starts queued vassals while start slots are free.
func (e *Emperor) admit() {
	if e.ragnarok {
		e.admission = nil // nothing starts any more
		return
	}
	for len(e.admission) > 0 && (e.opts.MaxStarting <= 0 || e.starting < e.opts.MaxStarting) {
		t := e.admission[0]
		e.admission[0] = admissionTicket{}
		e.admission = e.admission[1:]
		if e.vassals[t.v.key] != t.v || t.v.gen != t.gen || t.v.state != Waiting || !t.v.queued {
			continue // removed or moved on meanwhile
		}
		t.v.queued = false
		e.startSpawn(t.v)
	}
}

// beginStarting takes a start slot for v.
func (e *Emperor) beginStarting(v *vassal) {
	if v.starting {
		return
	}
	v.starting = true
	e.starting++
	v.startSeq++
	seq := v.startSeq
	v.startTimer = time.AfterFunc(e.opts.StartWindow, func() {
		select {
		case e.timers <- timerFired{key: v.key, kind: startTimer, gen: seq}:
		case <-e.done:
		}
	})
}

// doneStarting gives v's start slot back and admits the next in line.
func (e *Emperor) doneStarting(v *vassal) {
	if !v.starting {
		return
	}
	v.starting = false
	e.starting--
	if v.startTimer != nil {
		v.startTimer.Stop()
		v.startTimer = nil
	}
	// The loop admits the next in line once it has finished with the
	// current event, so whatever freed the slot is logged first.
	e.admitDue = true
}
