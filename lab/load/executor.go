package load

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// scenarioRun is one executor of the plan running (k6's executor): its
// scaled options, its schedule, and the counters of its summary. Its run
// waits for startTime, then hands over to the model: closed.go for the VU
// executors, open.go for the arrival-rate ones.
type scenarioRun struct {
	cfg      Scenario
	idOffset int // global VU id offset of this scenario
	e        *engine
	rec      *recorder     // for the scheduler's drops
	rs       *RateSchedule // arrival-rate executors only (nil: VUs)
	planned  int64         // iterations this segment's schedule holds
	lastPlan int64         // planned by the last time-series point

	started, completed, dropped, interrupted, errors atomic.Int64
	vus                                              atomic.Int64
	logged                                           atomic.Int64
}

// run runs the executor from its startTime until its end. The scheduling
// context ends after the active duration (no new iteration starts); the
// hard one gracefulStop later (and gracefulRampDown more for
// ramping-vus), interrupting what still runs.
func (r *scenarioRun) run(ctx context.Context) {
	if r.cfg.StartTime > 0 {
		if !sleepUntil(ctx, time.NewTimer(0), r.e.start.Add(r.cfg.StartTime)) {
			return
		}
	}
	start := time.Now()
	active := r.cfg.ActiveDuration()
	schedCtx, cancel1 := context.WithDeadline(ctx, start.Add(active))
	defer cancel1()
	hard := active + r.cfg.GracefulStop
	if r.cfg.Executor == RampingVUs {
		hard += r.cfg.GracefulRampDown
	}
	hardCtx, cancel2 := context.WithDeadline(ctx, start.Add(hard))
	defer cancel2()
	var err error
	if r.cfg.openModel() {
		err = r.runOpen(schedCtx, hardCtx, start)
	} else {
		err = r.runClosed(schedCtx, hardCtx, start)
	}
	if err != nil {
		r.e.log.Error("scenario failed", "scenario", r.cfg.Name, "err", err)
		r.e.setAbort(err.Error())
	}
}

// sleepUntil waits until at, or until ctx ends, on timer (callers reuse
// one; any state will do). It reports whether ctx is still live.
func sleepUntil(ctx context.Context, timer *time.Timer, at time.Time) bool {
	if wait := time.Until(at); wait > 0 {
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
		case <-timer.C:
		}
	}
	return ctx.Err() == nil
}

// stats are the executor's numbers for the summary (hal9lab.scenarios).
func (r *scenarioRun) stats() ScenarioStats {
	d := r.cfg.ActiveDuration()
	st := ScenarioStats{
		Executor: r.cfg.Executor, DurationMs: ms(d),
		Started: r.started.Load(), Completed: r.completed.Load(), Dropped: r.dropped.Load(),
		Interrupted: r.interrupted.Load(), Errors: r.errors.Load(), MaxVUs: int(r.vus.Load()),
	}
	if d > 0 {
		st.AchievedRate = float64(st.Started) / d.Seconds()
	}
	if r.rs != nil {
		st.PlannedIterations = r.planned
		if d > 0 {
			st.PlannedRate = float64(r.planned) / d.Seconds()
		}
	}
	return st
}

// warnings say what the summary must not hide: dropped iterations, a
// planned rate not held, iterations that returned errors.
func (r *scenarioRun) warnings(st ScenarioStats) []string {
	var w []string
	if st.Dropped > 0 {
		w = append(w, fmt.Sprintf("scenario %s: %d of %d planned iterations were dropped (no free VU within maxWait %s, maxVUs %d): the planned rate of %.4g/s was not held (started %.4g/s)",
			r.cfg.Name, st.Dropped, st.PlannedIterations, r.cfg.MaxWait, r.cfg.MaxVUs, st.PlannedRate, st.AchievedRate))
	} else if r.rs != nil && st.PlannedIterations > 0 && float64(st.Started) < 0.99*float64(st.PlannedIterations) && r.e.abortReason() == "" {
		w = append(w, fmt.Sprintf("scenario %s: started %d of %d planned iterations: the planned rate was not held",
			r.cfg.Name, st.Started, st.PlannedIterations))
	}
	if st.Errors > 0 {
		w = append(w, fmt.Sprintf("scenario %s: %d iterations returned an error (see the log)", r.cfg.Name, st.Errors))
	}
	return w
}
