package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload/hal9"
)

// loadFaults is what `hal9-lab load` adds against a server it did not
// start: the acknowledgement ledger (--ledger), checked afterwards through
// the API (visibility, not durability), and the scenario's LLM faults
// through --admin-url (the only faults it can cause there).
type loadFaults struct {
	a        *loadArgs
	acks     *ledger.Writer
	mem      ledger.Memory
	specs    []faults.Spec
	rec      *faults.Recorder
	started  chan time.Time
	records  chan []faults.Record
	cancel   context.CancelFunc
	monitor  *faults.Monitor
	workload load.Workload
}

func prepareLoadFaults(ctx context.Context, a *loadArgs, plan *load.Plan, wl load.Workload) (*loadFaults, error) {
	lf := &loadFaults{a: a, workload: wl}
	if a.ledger != "" {
		hw, ok := wl.(*hal9.Workload)
		if !ok {
			return nil, fmt.Errorf("load: --ledger needs a workload of kind hal9 (%s has kind %s): only it knows which writes the server acknowledged", a.file, plan.Workload.Kind)
		}
		w, err := ledger.Create(a.ledger)
		if err != nil {
			return nil, fmt.Errorf("load: --ledger: %w", err)
		}
		lf.acks = w
		hw.SetLedger(ledger.Tee{w, &lf.mem})
	}
	if plan.Faults != nil {
		specs, err := faults.Parse(plan.File, plan.Faults)
		if err != nil {
			return nil, err
		}
		specs = faults.Scaled(specs, a.scale)
		var end time.Duration
		for _, sc := range plan.Scenarios {
			s := sc.Scaled(a.scale)
			end = max(end, s.StartTime+s.ActiveDuration())
		}
		if err := faults.Validate(specs, end, faults.Have{Started: false, Replicas: 1}); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if len(specs) > 0 && a.adminURL == "" {
			return nil, fmt.Errorf("load: %s has LLM faults: give the server's admin listener with --admin-url http://HOST:ADMINPORT (they are injected through PUT /admin/llm/faults)", a.file)
		}
		lf.specs = specs
	}
	if len(lf.specs) == 0 {
		return lf, nil
	}
	lf.rec = &faults.Recorder{Next: load.NewTransport(2000)}
	lf.started = make(chan time.Time, 1)
	lf.records = make(chan []faults.Record, 1)
	lf.workload = &startSignal{Workload: wl, started: lf.started, at: a.start}
	mctx, cancel := context.WithCancel(ctx)
	lf.cancel = cancel
	lf.monitor = faults.StartMonitor(mctx, a.adminURL, 500*time.Millisecond)
	env := faults.Env{AdminURLs: []string{a.adminURL}, Logf: func(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...) }}
	go func() {
		select {
		case t0 := <-lf.started:
			lf.records <- faults.Run(mctx, t0, lf.specs, env)
		case <-mctx.Done():
			lf.records <- nil
		}
	}()
	return lf, nil
}

// transport is the recording transport with faults (nil: the engine's).
func (lf *loadFaults) transport() http.RoundTripper {
	if lf.rec == nil {
		return nil
	}
	return lf.rec
}

// finish judges the faults and checks the ledger through the API; a
// lost write or a failed fault verdict is exit status 99.
func (lf *loadFaults) finish(ctx context.Context, out io.Writer) error {
	var failed []string
	if len(lf.specs) > 0 {
		end := time.Now()
		lf.cancel()
		recs := <-lf.records
		res := faults.Analyze(faults.Input{Records: recs, Requests: lf.rec.Requests(), Health: lf.monitor.Samples(), End: end})
		fmt.Fprintln(out, "\nfaults:")
		for _, f := range res {
			v := "pass"
			if !f.Passed() {
				v = "FAIL"
				failed = append(failed, f.Name)
			}
			fmt.Fprintf(out, "  %s: %s: tried %.0f, failed %.0f %v, detect %s, recover %s\n", f.Name, v, f.Tried, f.Failed, f.FailedByStatus, msText(f.DetectMS), msText(f.RecoverMS))
			for _, c := range f.Checks {
				mark := "ok  "
				if !c.OK {
					mark = "FAIL"
				}
				fmt.Fprintf(out, "    %s %s: %s\n", mark, c.Name, c.Detail)
			}
			if f.Error != "" {
				fmt.Fprintf(out, "    FAIL %s\n", f.Error)
			}
		}
	}
	if lf.acks != nil {
		if err := lf.acks.Close(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "ledger: %s (%d acknowledged writes); reading them back through the API as their owners\n", lf.a.ledger, len(lf.mem.Entries))
		api := &ledger.API{Target: lf.a.target, Password: func(string) string { return hal9.Password }}
		v := ledger.Verify(ctx, lf.mem.Entries, api)
		fmt.Fprintf(out, "\nledger: %s\n  this checks visibility, not durability: a server that kept the writes only in memory would pass; against a database the lab holds, `hal9-lab run` checks durability\n", v.Line())
		for _, x := range v.LostSample {
			fmt.Fprintf(out, "  lost: %s\n", x)
		}
		if !v.OK() {
			failed = append(failed, "the ledger")
		}
	}
	if len(failed) > 0 {
		return &exitError{code: load.ExitThresholdsFailed, err: errors.New("failed: " + strings.Join(failed, ", "))}
	}
	return nil
}

func msText(p *float64) string {
	if p == nil {
		return "never"
	}
	return (time.Duration(*p) * time.Millisecond).String()
}

// startSignal tells when the workload's setup is done.
type startSignal struct {
	load.Workload
	started chan<- time.Time
	at      time.Time // --start-at: the executors wait for it after the setup
}

func (s *startSignal) Setup(ctx context.Context, env *load.Env) error {
	if err := s.Workload.Setup(ctx, env); err != nil {
		return err
	}
	s.started <- maxTime(time.Now(), s.at)
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
