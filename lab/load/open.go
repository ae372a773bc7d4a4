package load

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The open model (constant-arrival-rate, ramping-arrival-rate): iterations
// start on a schedule of their own (RateSchedule), whatever earlier ones
// are doing, so a slow system under test meets a growing queue instead of
// a slower client, and the queueing shows in iteration_response_time.

// arrivalPool is the open model's VUs for one executor: each takes due
// times from queue and runs the iteration, or drops it when it waited past
// maxWait; idle counts the VUs waiting for one.
type arrivalPool struct {
	r         *scenarioRun
	hardCtx   context.Context
	queue     chan time.Time // due times
	idle      atomic.Int64
	wg        sync.WaitGroup
	allocated int
}

// spawn allocates one more VU and starts its loop.
func (p *arrivalPool) spawn() error {
	v, err := p.r.newVU(p.allocated)
	if err != nil {
		return err
	}
	p.allocated++
	p.idle.Add(1)
	p.wg.Go(func() { p.serve(v) })
	return nil
}

// serve is one VU's loop: the next due iteration from the queue, until it
// is closed. After the executor's hard end, or past maxWait, an iteration
// is dropped instead of run.
func (p *arrivalPool) serve(v *vuHandle) {
	r := p.r
	defer v.client.close()
	for due := range p.queue {
		p.idle.Add(-1)
		if p.hardCtx.Err() != nil {
			v.client.rec.droppedIteration(1)
			r.dropped.Add(1)
			continue
		}
		if time.Since(due) > r.cfg.MaxWait {
			v.client.rec.droppedIteration(1)
			r.dropped.Add(1)
			p.idle.Add(1)
			continue
		}
		r.e.active.Add(1)
		v.iterate(p.hardCtx, due)
		r.e.active.Add(-1)
		p.idle.Add(1)
	}
}

// runOpen runs the arrival-rate executors: a scheduler starts iteration j
// at its planned time tⱼ (RateSchedule) whatever earlier iterations are
// doing, handing it to a free VU; with none free it allocates one up to
// maxVUs, and otherwise the iteration queues. A queued iteration that no
// VU picks up within maxWait is dropped (dropped_iterations); the wait of
// those that do run counts in iteration_response_time.
//
// The scheduler stops early only when the test is aborted (ctx), never
// because the deadline passed while it was catching up: every iteration
// of the plan is either started or counted as dropped.
func (r *scenarioRun) runOpen(ctx, schedCtx, hardCtx context.Context, start time.Time) error {
	g := r.e.opts.Segment
	maxVUs := g.share(r.cfg.MaxVUs)
	pre := g.share(r.cfg.PreAllocatedVUs)
	if r.planned > 0 {
		maxVUs = max(maxVUs, 1)
	}
	peak := r.rs.Start
	for _, s := range r.rs.Stages {
		peak = math.Max(peak, s.Target)
	}
	qcap := int(math.Min(math.Max(peak*r.cfg.MaxWait.Seconds()*1.5/float64(max(g.Count, 1)), 1024), 1<<20))
	pool := &arrivalPool{r: r, hardCtx: hardCtx, queue: make(chan time.Time, qcap)}
	var err error
	for range pre {
		if err = pool.spawn(); err != nil {
			break
		}
	}
	timer := time.NewTimer(time.Hour)
	step := int64(1)
	first := int64(0)
	if !g.whole() {
		step, first = int64(g.Count), int64(g.Index-1)
	}
	for j := first; err == nil; j += step {
		at, ok := r.rs.At(j)
		if !ok {
			break
		}
		due := start.Add(at)
		if !sleepUntil(ctx, timer, due) {
			break
		}
		if schedCtx.Err() != nil {
			// Past the scenario's end (the scheduler fell behind a rate it
			// cannot keep up with): the rest of the plan can only be
			// dropped, so count it in one step instead of walking it.
			if n := (r.rs.Count() - j + step - 1) / step; n > 0 {
				r.rec.droppedIteration(n)
				r.dropped.Add(n)
			}
			break
		}
		if pool.idle.Load() <= 0 && pool.allocated < maxVUs {
			err = pool.spawn()
		}
		select {
		case pool.queue <- due:
		default:
			r.rec.droppedIteration(1)
			r.dropped.Add(1)
		}
	}
	if err == nil {
		<-schedCtx.Done() // the scenario lasts its duration, like k6's
	}
	close(pool.queue)
	pool.wg.Wait()
	return err
}
