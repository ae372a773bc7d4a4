package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The open model (constant-arrival-rate, ramping-arrival-rate): iterations
// start on a schedule of their own (RateSchedule), whatever earlier ones
// are doing, so a slow system under test meets a growing queue instead of
// a slower client, and the queueing shows in iteration_response_time.
//
// The plan's iterations are tickets, taken in order: a free VU takes the
// next one, sleeps until it is due and runs it. A ticket that comes due
// with no VU free waits for the first VU that frees up (the wait counts in
// iteration_response_time), and the allocator adds a VU, up to maxVUs, for
// each ticket that comes due untaken. Each iteration wakes only the VU
// that runs it: a scheduler goroutine handing every iteration to a VU
// costs a second wake-up (of a goroutine, and on an idle machine of a
// thread) per iteration, which at a few hundred iterations a second was
// most of the engine's CPU.

// arrivals are one open-model executor's tickets and VUs.
type arrivals struct {
	r                 *scenarioRun
	schedCtx, hardCtx context.Context
	start             time.Time
	first, step       int64         // ticket n is the plan's iteration first + n·step (this segment's)
	planned           int64         // tickets in all
	next              atomic.Int64  // the next ticket to take
	taken             chan struct{} // a ticket was taken (the allocator waits for one after adding a VU)
	allocated         int           // the allocator's alone
	wg                sync.WaitGroup
}

// due is when ticket n is due.
func (a *arrivals) due(n int64) time.Time {
	at, _ := a.r.rs.At(a.first + n*a.step)
	return a.start.Add(at)
}

// spawn allocates one more VU and starts its loop.
func (a *arrivals) spawn() error {
	v, err := a.r.newVU(a.allocated)
	if err != nil {
		return err
	}
	a.allocated++
	a.wg.Go(func() { a.serve(v) })
	return nil
}

// serve is one VU's loop: take the next ticket, wait for it to be due, run
// it; until the tickets run out. After the executor's hard end, or past
// maxWait, a ticket is dropped instead of run.
func (a *arrivals) serve(v *vuHandle) {
	defer v.client.close()
	r := a.r
	drop := func(n int64) {
		v.client.rec.droppedIteration(n)
		r.dropped.Add(n)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		n := a.next.Add(1) - 1
		if n >= a.planned {
			return
		}
		select {
		case a.taken <- struct{}{}:
		default:
		}
		due := a.due(n)
		if !sleepUntil(a.hardCtx, timer, due) {
			drop(1 + a.claimRest(a.planned)) // the executor's hard end
			return
		}
		if late := time.Since(due); late > r.cfg.MaxWait {
			// Behind the plan by more than maxWait: this ticket and every
			// other one due before now−maxWait are dropped, counted in one
			// step instead of walked.
			drop(1 + a.claimRest(a.ticketsBefore(time.Now().Add(-r.cfg.MaxWait))))
			continue
		}
		r.e.active.Add(1)
		v.iterate(a.hardCtx, due)
		r.e.active.Add(-1)
	}
}

// ticketsBefore is how many of this segment's tickets are due before t.
func (a *arrivals) ticketsBefore(t time.Time) int64 {
	n := a.r.rs.CountBefore(t.Sub(a.start))
	if a.step > 1 {
		n = segmentCount(n, a.r.e.opts.Segment)
	}
	return min(n, a.planned)
}

// claimRest takes every ticket not yet taken below upTo and returns how
// many it took.
func (a *arrivals) claimRest(upTo int64) int64 {
	for {
		cur := a.next.Load()
		if cur >= upTo {
			return 0
		}
		if a.next.CompareAndSwap(cur, upTo) {
			return upTo - cur
		}
	}
}

// dropRest counts every ticket not yet taken as dropped.
func (a *arrivals) dropRest() {
	if n := a.claimRest(a.planned); n > 0 {
		a.r.rec.droppedIteration(n)
		a.r.dropped.Add(n)
	}
}

// allocate adds a VU, up to maxVUs, whenever a ticket comes due that no
// VU has taken: every VU is busy then.
func (a *arrivals) allocate(maxVUs int) error {
	timer := time.NewTimer(time.Hour)
	for a.allocated < maxVUs {
		n := a.next.Load()
		if n >= a.planned || !sleepUntil(a.hardCtx, timer, a.due(n)) || a.schedCtx.Err() != nil {
			return nil
		}
		if a.next.Load() != n {
			continue // taken while we slept
		}
		select {
		case <-a.taken: // forget takes before the VU is added
		default:
		}
		if err := a.spawn(); err != nil {
			return err
		}
		select { // until a ticket is taken: not another VU for the same one
		case <-a.taken:
		case <-a.hardCtx.Done():
			return nil
		}
	}
	return nil
}

// runOpen runs the arrival-rate executors: iteration j starts at its
// planned time tⱼ (RateSchedule) whatever earlier iterations are doing, on
// a free VU; with none free the allocator adds one up to maxVUs, and
// otherwise the iteration waits for the first VU to free up. One that no
// VU takes within maxWait is dropped (dropped_iterations); the wait of
// those that do run counts in iteration_response_time.
//
// Only the test's end (hardCtx: aborted, or past gracefulStop) stops the
// executor early, never a deadline passed while catching up: every
// iteration of the plan is either started or counted as dropped.
func (r *scenarioRun) runOpen(schedCtx, hardCtx context.Context, start time.Time) error {
	g := r.e.opts.Segment
	maxVUs := g.share(r.cfg.MaxVUs)
	if r.planned > 0 {
		maxVUs = max(maxVUs, 1)
	}
	a := &arrivals{r: r, schedCtx: schedCtx, hardCtx: hardCtx, start: start, step: 1, planned: r.planned, taken: make(chan struct{}, 1)}
	if !g.whole() {
		a.first, a.step = int64(g.Index-1), int64(g.Count)
	}
	var err error
	for range g.share(r.cfg.PreAllocatedVUs) {
		if err = a.spawn(); err != nil {
			break
		}
	}
	if err == nil {
		err = a.allocate(maxVUs)
	}
	if err != nil {
		a.dropRest() // the VUs stop at their next ticket
	}
	a.wg.Wait()
	a.dropRest() // tickets no VU was there to take when the test ended
	if err == nil {
		<-schedCtx.Done() // the scenario lasts its duration, like k6's
	}
	return err
}
