package faults

import (
	"context"
	"net/http"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

// Timeline plays a scenario's faults during one load run: the same for
// `hal9-lab run` (servers, proxies and backends the lab started) and for
// `hal9-lab load --target` (LLM faults through a server's admin listener).
// Wrap the run's workload and transport with it, run the load, then Stop:
//
//	tl := faults.StartTimeline(ctx, faults.TimelineOptions{Specs: specs, Workload: w, Watch: admin, Env: env})
//	load.Run(ctx, plan, load.Options{Workload: tl.Workload(), Transport: tl.Transport(), …})
//	res := faults.Analyze(tl.Stop())
//
// Its clock starts when the workload's setup is done (the executors start),
// so `at: 10s` means ten seconds into the load.
type Timeline struct {
	specs    []Spec
	workload load.Workload
	rec      *Recorder
	monitor  *Monitor
	cancel   context.CancelFunc
	records  chan []Record
}

// TimelineOptions say what a Timeline plays and on what.
type TimelineOptions struct {
	Specs    []Spec
	Workload load.Workload // the run's workload
	// Watch is the admin listener (http://host:port) whose /readyz the
	// timeline samples twice a second, for detection and recovery.
	Watch string
	Env   Env
	// StartAt holds the clock until then when the setup ends earlier
	// (load --start-at: the executors wait for it too).
	StartAt time.Time
}

// StartTimeline starts watching o.Watch; the faults start with the load.
func StartTimeline(ctx context.Context, o TimelineOptions) *Timeline {
	started := make(chan time.Time, 1)
	t := &Timeline{specs: o.Specs, rec: &Recorder{Next: load.NewTransport(2000)}, records: make(chan []Record, 1),
		workload: &startSignal{Workload: o.Workload, started: started, at: o.StartAt}}
	mctx, cancel := context.WithCancel(ctx)
	t.cancel = cancel
	t.monitor = StartMonitor(mctx, o.Watch, 500*time.Millisecond)
	go func() {
		select {
		case t0 := <-started:
			t.records <- Run(mctx, t0, o.Specs, o.Env)
		case <-mctx.Done():
			t.records <- nil
		}
	}()
	return t
}

// Workload is the run's workload, telling the timeline when the load
// starts.
func (t *Timeline) Workload() load.Workload { return t.workload }

// Transport records every request of the run (each fault's window is
// judged on them).
func (t *Timeline) Transport() http.RoundTripper { return t.rec }

// Stop ends the timeline at the end of the load: a fault not yet played is
// skipped, one still held is healed (a timeline ends inside its load:
// Validate, so this only happens to a load that stopped early). It
// returns what Analyze judges: what was injected and healed when, every
// request, the health samples, the end of the load.
func (t *Timeline) Stop() Input {
	end := time.Now()
	t.cancel()
	recs := <-t.records
	if tr, ok := t.rec.Next.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
	return Input{Records: recs, Requests: t.rec.Requests(), Health: t.monitor.Samples(), End: end}
}

// startSignal tells when the workload's setup is done: the executors
// start (at the latest of then and at).
type startSignal struct {
	load.Workload
	started chan<- time.Time
	at      time.Time
}

func (s *startSignal) Setup(ctx context.Context, env *load.Env) error {
	if err := s.Workload.Setup(ctx, env); err != nil {
		return err
	}
	now := time.Now()
	if s.at.After(now) {
		now = s.at
	}
	s.started <- now
	return nil
}

// MillisText is a duration in milliseconds as the verdicts print it (a
// fault's detection or recovery): "never" when it did not happen.
func MillisText(ms *float64) string {
	if ms == nil {
		return "never"
	}
	return (time.Duration(*ms) * time.Millisecond).String()
}
