package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The closed model (constant-vus, ramping-vus): a fixed pool of VUs, each
// running iterations back to back, so the request rate is whatever the
// system under test lets them reach. The schedule (VUSchedule) says how
// many of them run at each moment.

// vuTarget is how many VUs the schedule wants running now. VUs at or
// above it park until the next change wakes them.
type vuTarget struct {
	n    atomic.Int64
	mu   sync.Mutex
	wake chan struct{} // closed and replaced at each change
}

func newVUTarget(n int) *vuTarget {
	t := &vuTarget{wake: make(chan struct{})}
	t.n.Store(int64(n))
	return t
}

// wants tells whether VU j (global index) should run.
func (t *vuTarget) wants(j int64) bool { return j < t.n.Load() }

// changed returns the channel the next change closes.
func (t *vuTarget) changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.wake
}

// set moves the target to n and returns the previous one; wakeAll then
// lets the parked VUs look again.
func (t *vuTarget) set(n int64) (old int64) { return t.n.Swap(n) }

func (t *vuTarget) wakeAll() {
	t.mu.Lock()
	close(t.wake)
	t.wake = make(chan struct{})
	t.mu.Unlock()
}

// runClosed runs constant-vus and ramping-vus: VU j (global index) runs
// iterations back to back while the schedule has more than j VUs. When
// the schedule drops below j+1, the VU finishes its iteration, or is
// interrupted after gracefulRampDown.
func (r *scenarioRun) runClosed(schedCtx, hardCtx context.Context, start time.Time) error {
	g := r.e.opts.Segment
	sched := r.cfg.VUSchedule()
	vus := make([]*vuHandle, g.share(sched.Max()))
	for l := range vus {
		v, err := r.newVU(l)
		if err != nil {
			return err
		}
		vus[l] = v
	}
	target := newVUTarget(sched.At(0))
	ramping := r.cfg.Executor == RampingVUs

	var wg sync.WaitGroup
	for l, v := range vus {
		j := int64(g.global(l))
		wg.Go(func() { r.loopVU(schedCtx, hardCtx, v, j, target, ramping) })
	}

	// the controller: move the target at each change of the schedule
	timer := time.NewTimer(time.Hour)
	for _, at := range sched.Changes() {
		if !sleepUntil(schedCtx, timer, start.Add(at)) {
			break
		}
		nt := int64(sched.At(at + time.Microsecond))
		if old := target.set(nt); nt < old {
			for l, v := range vus {
				if j := int64(g.global(l)); j >= nt && j < old {
					v.rampDown(r.cfg.GracefulRampDown, func() bool { return !target.wants(j) })
				}
			}
		}
		target.wakeAll()
	}
	<-schedCtx.Done()
	wg.Wait()
	return nil
}

// loopVU is VU j's life in the closed model: iterations back to back while
// the target wants it (interruptible ones in ramping-vus), parked while it
// does not, until the executor's active duration ends.
func (r *scenarioRun) loopVU(schedCtx, hardCtx context.Context, v *vuHandle, j int64, target *vuTarget, ramping bool) {
	running := false // counted in the vus gauge
	defer v.client.close()
	defer func() {
		if running {
			r.e.active.Add(-1)
		}
	}()
	for schedCtx.Err() == nil {
		if !target.wants(j) {
			if running {
				running = false
				r.e.active.Add(-1)
			}
			w := target.changed()
			if !target.wants(j) {
				select {
				case <-w:
				case <-schedCtx.Done():
				}
			}
			continue
		}
		if !running {
			running = true
			r.e.active.Add(1)
		}
		if ramping {
			v.iterateInterruptible(hardCtx)
		} else {
			v.iterate(hardCtx, time.Time{})
		}
	}
}
