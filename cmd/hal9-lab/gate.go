package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hal9-lab/hal9-lab/lab"
	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// runGate is `hal9-lab gate` (what `make gate` calls). Exit codes: 0
// nothing regressed; 99 a metric regressed; 3 inconclusive (no series
// could be judged); 1 (or 2 for bad flags, and for runs too few to reach
// α, found before anything runs) when the gate could not run; 130
// interrupted.
func runGate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gate", flag.ContinueOnError)
	var f labFlags
	f.register(fs, "nightly")
	runs := fs.Int("runs", 0, "repetitions per backend (default: the profile's gate.runs, else 5)")
	against := fs.String("against", "", "git ref to build in a temporary worktree and interleave with (A B A B …); default: the stored baseline")
	refBin := fs.String("reference-bin", "", "an already built reference server instead of --against")
	baselineFile := fs.String("baseline", "", "baseline file (default reports/baselines/<profile>.json)")
	var effects multiFlag
	fs.Var(&effects, "min-effect", "override a minimum effect: PATTERN=EFFECT, PATTERN a glob on the metric ('*_ms=15%', cache_hit_rate=3pt: every op and the aggregate) or on op/metric ('signal/http_req_duration_p99_ms=20%', 'signal:*/*_ms=25%'); repeatable")
	alpha := fs.Float64("alpha", baseline.Alpha, "significance level of the Mann-Whitney U test")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hal9-lab gate [flags]\n\nRuns the profile --runs times per backend and compares every metric with the baseline\n(or with --against REF, built in a git worktree and run interleaved): regressed only when the\nU test says so (p < alpha, after Benjamini-Hochberg within each distribution's quantiles) AND the\nchange exceeds the series' minimum effect (the rule's, or twice the baseline's own spread).\nExit 0: nothing regressed; 99: regressed; 3: inconclusive (nothing could be judged);\n2: bad flags, or too few runs to reach alpha (checked before anything runs); other: the gate could not run.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkRunsFlag(fs, *runs); err != nil {
		return &exitError{code: 2, err: err}
	}
	o, err := f.options("gate")
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	g, err := gateOptions(o, *runs, effects, *alpha)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if *against != "" && *refBin != "" {
		return &exitError{code: 2, err: errors.New("--against and --reference-bin: give one")}
	}
	g.Against = *against
	if *refBin != "" {
		abs, err := filepath.Abs(*refBin)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		if _, err := os.Stat(abs); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--reference-bin: %w", err)}
		}
		g.ReferenceBin = abs
	}
	if *baselineFile != "" {
		g.BaselinePath = *baselineFile
	}
	sum, err := lab.Gate(ctx, g)
	if errors.Is(err, lab.ErrCannotJudge) {
		return &exitError{code: 2, err: err}
	}
	if err != nil {
		return err
	}
	fmt.Println()
	printVerdicts(sum)
	fmt.Printf("reports: %s/{report.md,report.html,summary.json,junit.xml}\n", o.OutDir)
	switch {
	case ctx.Err() != nil:
		return &exitError{code: 130, err: errors.New("interrupted: partial report written")}
	case sum.Gate != nil && sum.Gate.ExitCode == lab.ExitRegressed:
		return &exitError{code: lab.ExitRegressed, err: errors.New("performance regressed (see the verdict table)")}
	case sum.Gate != nil && sum.Gate.ExitCode == lab.ExitInconclusive:
		return &exitError{code: lab.ExitInconclusive, err: errors.New("inconclusive: no series could be judged (see the verdict table's reasons)")}
	case len(sum.LabErrors) > 0:
		return fmt.Errorf("lab errors: the measurements cannot be trusted (%s)", strings.Join(sum.LabErrors, "; "))
	}
	return nil
}

// gateOptions fills the gate's options from the flags and the profile.
func gateOptions(o lab.Options, runs int, effects []string, alpha float64) (lab.GateOptions, error) {
	g := lab.GateOptions{Options: o, Runs: runs, Alpha: alpha}
	if g.Runs == 0 {
		g.Runs = o.Profile.Gate.Runs
	}
	if g.Runs == 0 {
		g.Runs = 5
	}
	if g.Runs < 1 {
		return g, fmt.Errorf("--runs %d: want at least 1", runs)
	}
	if alpha <= 0 || alpha >= 1 {
		return g, fmt.Errorf("--alpha %v: want a level in (0,1), e.g. 0.05", alpha)
	}
	g.Rules = baseline.DefaultRules()
	var err error
	for pat, eff := range o.Profile.Gate.MinEffect {
		if g.Rules, err = g.Rules.Override(pat, eff); err != nil {
			return g, fmt.Errorf("profile %s gate.min_effect: %w", o.Profile.Name, err)
		}
	}
	for _, e := range effects {
		pat, eff, ok := strings.Cut(e, "=")
		if !ok {
			return g, fmt.Errorf("--min-effect %q: want METRIC_PATTERN=EFFECT, e.g. '*_ms=15%%'", e)
		}
		if g.Rules, err = g.Rules.Override(strings.TrimSpace(pat), eff); err != nil {
			return g, fmt.Errorf("--min-effect: %w", err)
		}
	}
	return g, nil
}

// printVerdicts prints the gate's table (the report.md section).
func printVerdicts(sum *report.RunSummary) {
	md := report.Markdown(sum)
	if i := strings.Index(md, "## Gate"); i >= 0 {
		rest := md[i:]
		if j := strings.Index(rest, "\n## Results"); j >= 0 {
			rest = rest[:j]
		}
		fmt.Println(strings.TrimSpace(rest))
		fmt.Println()
		return
	}
	fmt.Println(verdictLine(sum))
}

// checkRunsFlag rejects an explicit --runs below 1: 0 means "the profile's"
// only when the flag was not given, so --runs 0 must not silently become a
// full 5-run gate or baseline.
func checkRunsFlag(fs *flag.FlagSet, runs int) error {
	given := false
	fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == "runs" })
	if given && runs < 1 {
		return fmt.Errorf("--runs %d: want at least 1 (4 or more for the U test to reach p < 0.05)", runs)
	}
	return nil
}
