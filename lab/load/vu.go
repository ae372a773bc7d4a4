package load

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// vuHandle is one allocated VU: the workload's VU with its recorder, HTTP
// client and iteration context, and what lets a ramp-down of ramping-vus
// interrupt its running iteration after gracefulRampDown. A VU runs one
// iteration at a time, so only rampDown's timer runs beside it.
type vuHandle struct {
	sc     *scenarioRun
	vu     VU
	client *Client
	it     Iter

	mu     sync.Mutex
	cancel context.CancelFunc // of the running interruptible iteration; nil between them
	downs  uint64             // ramp-downs so far: an earlier one's timer finds it changed
}

// newVU allocates the VU of local index local (of this segment).
func (r *scenarioRun) newVU(local int) (*vuHandle, error) {
	e := r.e
	id := r.idOffset + e.opts.Segment.global(local) + 1
	vu, err := e.opts.Workload.NewVU(id)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: new VU %d: %w", r.cfg.Name, id, err)
	}
	rec := e.sink.recorder(r.cfg.Name)
	v := &vuHandle{sc: r, vu: vu}
	v.client = newClient(e.tgt, e.rt, rec)
	v.it = Iter{VU: id, Scenario: r.cfg.Name, HTTP: v.client, rec: rec}
	e.alloc.Add(1)
	r.vus.Add(1)
	return v, nil
}

// iterate runs one iteration due at sched (zero: now); ctx is the
// engine's context for it (cancelled when the test or the VU must stop).
// An interrupted iteration counts as interrupted, not as an iteration.
func (v *vuHandle) iterate(ctx context.Context, sched time.Time) {
	sc := v.sc
	sc.started.Add(1)
	v.client.ectx = ctx
	start := time.Now()
	if sched.IsZero() {
		sched = start
	}
	v.it.Scheduled = sched
	err := v.vu.Iteration(ctx, &v.it)
	v.it.Iteration++
	end := time.Now()
	if ctx.Err() != nil {
		sc.interrupted.Add(1)
		return
	}
	if err != nil {
		sc.errors.Add(1)
		if sc.logged.Add(1) <= 5 {
			sc.e.log.Warn("iteration failed", "scenario", sc.cfg.Name, "vu", v.it.VU, "err", err)
		}
	}
	sc.completed.Add(1)
	v.client.rec.iteration(end.Sub(start), end.Sub(sched))
}

// iterateInterruptible runs one iteration (due now) that rampDown can
// interrupt.
func (v *vuHandle) iterateInterruptible(ctx context.Context) {
	ictx, cancel := context.WithCancel(ctx)
	v.mu.Lock()
	v.cancel = cancel
	v.mu.Unlock()
	v.iterate(ictx, time.Time{})
	v.mu.Lock()
	v.cancel = nil
	v.mu.Unlock()
	v.client.stop.release() // ending ictx now must not close the connection
	cancel()
}

// rampDown, grace from now, interrupts the iteration the VU is running
// then (if any), unless a later ramp-down has taken over or the schedule
// wants the VU again (stillOut is false).
func (v *vuHandle) rampDown(grace time.Duration, stillOut func() bool) {
	v.mu.Lock()
	v.downs++
	down := v.downs
	v.mu.Unlock()
	time.AfterFunc(grace, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.downs == down && v.cancel != nil && stillOut() {
			v.cancel()
		}
	})
}
