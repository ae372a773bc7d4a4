package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

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
	timeline *faults.Timeline // nil without faults
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
	specs, end, err := faults.ForPlan(plan, nil, a.scale)
	if err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return lf, nil
	}
	if err := faults.Validate(specs, end, faults.Have{Started: false, Replicas: 1}); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if a.adminURL == "" {
		return nil, fmt.Errorf("load: %s has LLM faults: give the server's admin listener with --admin-url http://HOST:ADMINPORT (they are injected through PUT /admin/llm/faults)", a.file)
	}
	lf.timeline = faults.StartTimeline(ctx, faults.TimelineOptions{Specs: specs, Workload: wl, Watch: a.adminURL, StartAt: a.start,
		Env: faults.Env{AdminURLs: []string{a.adminURL}, Logf: func(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...) }}})
	lf.workload = lf.timeline.Workload()
	return lf, nil
}

// transport is the recording transport with faults (nil: the engine's).
func (lf *loadFaults) transport() http.RoundTripper {
	if lf.timeline == nil {
		return nil
	}
	return lf.timeline.Transport()
}

// finish judges the faults and checks the ledger through the API; a
// lost write or a failed fault verdict is exit status 99.
func (lf *loadFaults) finish(ctx context.Context, out io.Writer) error {
	var failed []string
	if lf.timeline != nil {
		res := faults.Analyze(lf.timeline.Stop())
		fmt.Fprintln(out, "\nfaults:")
		for _, f := range res {
			v := "pass"
			if !f.Passed() {
				v = "FAIL"
				failed = append(failed, f.Name)
			}
			fmt.Fprintf(out, "  %s: %s: tried %.0f, failed %.0f %v, detect %s, recover %s\n", f.Name, v, f.Tried, f.Failed, f.FailedByStatus, faults.MillisText(f.DetectMS), faults.MillisText(f.RecoverMS))
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
