package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/hal9-lab/hal9-lab/lab"
)

// runBaseline is `hal9-lab baseline update --profile P --runs N`: measure
// the profile N times per backend on this machine and write
// reports/baselines/P.json (commit it).
func runBaseline(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "update" {
		return &exitError{code: 2, err: errors.New("usage: hal9-lab baseline update --profile P --runs N [run's flags]")}
	}
	fs := flag.NewFlagSet("baseline update", flag.ContinueOnError)
	var f labFlags
	f.register(fs, "smoke")
	runs := fs.Int("runs", 0, "repetitions per backend (default: the profile's gate.runs, else 5; at least 4, or a gate of as many runs could judge nothing)")
	outFile := fs.String("file", "", "baseline file to write (default reports/baselines/<profile>.json); its profiles go beside it, in profiles/<profile>/")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := checkRunsFlag(fs, *runs); err != nil {
		return &exitError{code: 2, err: err}
	}
	o, err := f.options("baseline update")
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	g, err := gateOptions(o, *runs, nil, 0.05)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	g.BaselinePath = *outFile
	start := time.Now()
	_, path, err := lab.UpdateBaseline(ctx, g)
	if errors.Is(err, lab.ErrCannotJudge) {
		return &exitError{code: 2, err: err}
	}
	if err != nil {
		return err
	}
	fmt.Printf("baseline %s written in %s (%d runs per backend); report in %s\n", path, time.Since(start).Round(time.Second), g.Runs, o.OutDir)
	return nil
}
