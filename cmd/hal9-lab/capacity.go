package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/hal9-lab/hal9-lab/internal/durationflag"
	"github.com/hal9-lab/hal9-lab/lab/capacity"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

const capacityUsage = `usage: hal9-lab capacity SCENARIO.yaml --target URL [--slo EXPR]... [--summary-export FILE] [flags]

Finds the knee: the highest arrival rate (iterations/s, an open model) at
which the SLO holds. The scenario file gives the workload and, unless
--slo is given, the SLO (its latency and error-rate thresholds); its
executors are replaced by the search's constant-arrival-rate steps (a
think time is dropped). The rate doubles from --start-rate in short
probes until one fails, then bisects between the last good and the first
bad rate to --precision with full steps. A failing step is run again
and counts when that fails too (--no-retry: at once, for a full step);
a short probe that ends up as the knee is confirmed by a full step. Each
step settles unjudged, then is judged. By default a step lasts as long as its SLO needs: the settle the
time a queue 1+precision over capacity takes to break the SLO's latency
bound (1 s for p99<50 ms), the judged part until it holds enough samples
for the SLO's quantile (1,522 for a p99; probes 381), within 2-20 s
(probes 2-5 s); --step and --settle fix them. A step the load generator
could not hold (dropped iterations over 1 %, every VU busy) is the lab's
limit, reported as "engine", never as the server's knee.

Exit status: 0 a knee was found (whatever limited it), 99 even the start
rate broke the SLO, 1 errors (also: the engine failed at the start rate),
2 bad flags.

flags:`

type capacityFlags struct {
	target, export, runID string
	slo                   multiFlag
	p                     capacity.Params
	verbose               bool
}

func newCapacityFlagSet(f *capacityFlags, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("capacity", flag.ContinueOnError)
	fs.StringVar(&f.target, "target", getenv("HAL9_TARGET"), "base URL of the server under test (env HAL9_TARGET)")
	fs.Var(&f.slo, "slo", "an SLO threshold METRIC:EXPR in the scenario files' syntax, e.g. 'http_req_duration:p(99)<500' (repeatable; default: the file's thresholds)")
	fs.StringVar(&f.export, "summary-export", "", "write the search's JSON (knee, every step, the USL fit) to this file")
	fs.Float64Var(&f.p.StartRate, "start-rate", capacity.DefaultStartRate, "first step's rate, iterations/s")
	fs.Float64Var(&f.p.Growth, "growth", capacity.DefaultGrowth, "ramp factor between steps until one fails")
	fs.Float64Var(&f.p.Ceiling, "ceiling", capacity.DefaultCeiling, "highest rate tried, iterations/s")
	fs.Float64Var(&f.p.Precision, "precision", capacity.DefaultPrecision, "stop bisecting when bad/good − 1 is at most this")
	fs.IntVar(&f.p.MaxSteps, "max-steps", capacity.DefaultMaxSteps, "bound on the number of steps")
	fs.BoolVar(&f.p.NoRetry, "no-retry", false, "let a failing full step stand without a second one (default: a failure counts when a second full step at its rate fails too)")
	durationflag.Var(fs, &f.p.Step, "step", 0, "fixed judged length of every step (default: as long as the SLO's quantile needs, 2-20s)")
	durationflag.Var(fs, &f.p.Settle, "settle", 0, "fixed unjudged load before each step's judged part, 0 for none (default: the SLO's latency bound ÷ --precision, 1-30s)")
	fs.IntVar(&f.p.MaxVUs, "max-vus", capacity.DefaultMaxVUs, "VU bound of each step (k6's maxVUs)")
	durationflag.Var(fs, &f.p.Cooldown, "cooldown", 0, "pause between steps (default 1s)")
	fs.StringVar(&f.runID, "run-id", "", "names the search's virtual users (default random)")
	fs.BoolVar(&f.verbose, "v", false, "log at debug level")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), capacityUsage)
		fs.PrintDefaults()
	}
	return fs
}

// parseCapacityArgs checks a `hal9-lab capacity` command line (bad flags
// are exit 2).
func parseCapacityArgs(args []string, getenv func(string) string) (*capacityFlags, string, error) {
	var f capacityFlags
	fs := newCapacityFlagSet(&f, getenv)
	fs.SetOutput(os.Stderr)
	files, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", err
		}
		return nil, "", &exitError{code: 2, err: err}
	}
	bad := func(format string, a ...any) error { return &exitError{code: 2, err: fmt.Errorf(format, a...)} }
	if len(files) != 1 {
		return nil, "", bad("want exactly one scenario file, got %d (see -h)", len(files))
	}
	if f.target == "" {
		return nil, "", bad("--target is required (the server's base URL, e.g. http://127.0.0.1:8080)")
	}
	if !strings.HasPrefix(f.target, "http://") && !strings.HasPrefix(f.target, "https://") {
		return nil, "", bad("--target %q must be an http:// or https:// URL", f.target)
	}
	f.p.SLO = f.slo
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	switch {
	case set["step"] && f.p.Step <= 0:
		return nil, "", bad("--step %s: want a judged length of at least 1s, or leave --step out for the length the SLO needs", f.p.Step)
	case set["settle"] && f.p.Settle == 0:
		f.p.Settle = capacity.NoSettle
	case set["settle"] && f.p.Settle < 0:
		return nil, "", bad("--settle %s: want a positive duration, 0 for none, or leave --settle out for the time a queue needs to break the SLO", f.p.Settle)
	case f.p.Cooldown < 0:
		return nil, "", bad("--cooldown %s must not be negative", f.p.Cooldown)
	}
	for name, v := range map[string]float64{"start-rate": f.p.StartRate, "growth": f.p.Growth, "ceiling": f.p.Ceiling, "precision": f.p.Precision} {
		if v == 0 { // the search would take 0 as "the default"; on the command line it is a mistake
			return nil, "", bad("--%s 0: want a positive value (see -h for the default)", name)
		}
	}
	if err := f.p.Validate(); err != nil {
		return nil, "", bad("%v", err)
	}
	if f.export != "" {
		if err := checkOutputs(f.export, ""); err != nil {
			return nil, "", bad("%v", strings.TrimPrefix(err.Error(), "load: "))
		}
	}
	return &f, files[0], nil
}

// runCapacity is `hal9-lab capacity`.
func runCapacity(ctx context.Context, args []string) error {
	f, file, err := parseCapacityArgs(args, os.Getenv)
	if err != nil {
		return err
	}
	plan, err := load.ReadScenarioFile(file)
	if err != nil {
		return err
	}
	level := slog.LevelError // the engine's per-step warnings are in the step lines
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	res, err := capacity.Run(ctx, plan, f.target, f.p, os.Stderr, capacity.LoadOptions{Logger: logger, RunID: f.runID})
	if err != nil && res == nil {
		return err
	}
	writeCapacity(os.Stdout, res)
	if f.export != "" {
		b, jerr := json.MarshalIndent(res, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(f.export, append(b, '\n'), 0o644)
		}
		if jerr != nil {
			return fmt.Errorf("capacity: --summary-export: %w", jerr)
		}
		fmt.Fprintf(os.Stderr, "summary: %s\n", f.export)
	}
	switch {
	case ctx.Err() != nil:
		return &exitError{code: 130, err: errors.New("interrupted: the knee above is a lower bound")}
	case err != nil:
		return err
	}
	switch res.ExitCode() {
	case capacity.ExitSLOAtStart:
		return &exitError{code: load.ExitThresholdsFailed, err: fmt.Errorf("even the start rate %.4g it/s broke the SLO: lower --start-rate", f.p.StartRate)}
	case 1:
		return fmt.Errorf("the load generator could not hold the start rate %.4g it/s (%s): raise --max-vus or run it on another machine", f.p.StartRate, res.Steps[0].Engine)
	}
	return nil
}

// writeCapacity prints the knee, the steps and the fit.
func writeCapacity(w io.Writer, r *capacity.Result) {
	k := r.Knee
	fmt.Fprintf(w, "\nSLO: %s\n", strings.Join(k.SLO, ", "))
	if k.Found {
		fmt.Fprintf(w, "knee: %.4g iterations/s (%.4g req/s, p99 %.1f ms), limited by %s", k.Rate, k.RequestRate, k.P99, k.LimitedBy)
		if k.Bound > 0 {
			fmt.Fprintf(w, " (fails at %.4g it/s)", k.Bound)
		}
		fmt.Fprintln(w)
		rating := report.RatingOf(report.Leg{Capacity: &report.Capacity{Search: r}})
		fmt.Fprintf(w, "rated capacity, if the target is one server: %s (%s; per server, on its machine class)\n", report.RatingFlag(rating), rating.Why)
	} else {
		fmt.Fprintf(w, "knee: none: the start rate already failed (limited by %s)\n", k.LimitedBy)
	}
	fmt.Fprintf(w, "\n  %-7s %9s %9s %9s %9s %9s %9s %7s %8s %6s %9s  %s\n", "phase", "planned", "achieved", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "dropped", "N", "settle+s", "verdict")
	for _, s := range r.Steps {
		v := "pass"
		if !s.Pass {
			v = "FAIL (" + s.LimitedBy + ")"
		}
		fmt.Fprintf(w, "  %-7s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %6.2f%% %8.0f %6.1f %4.1f+%4.1f  %s\n", s.Phase, s.PlannedRate, s.AchievedRate, s.RequestRate,
			s.P50, s.P95, s.P99, s.ErrorRate*100, s.Dropped, s.Concurrency, s.SettleS, s.DurationS, v)
	}
	if r.Settings.Rule != "" {
		fmt.Fprintf(w, "\nstep lengths: %s\n", r.Settings.Rule)
	}
	if f := r.Fit; f != nil {
		fmt.Fprintf(w, "\nUSL fit over %d steps (N = req/s × mean response time): σ=%.4g κ=%.4g λ=%.4g req/s, R²=%.3f", f.Points, f.Sigma, f.Kappa, f.Lambda, f.R2)
		switch {
		case f.PeakN > 0:
			fmt.Fprintf(w, ", peak at N*=%.1f (%.4g req/s)", f.PeakN, f.PeakX)
		case f.PeakX > 0:
			fmt.Fprintf(w, ", no peak in reach (κ≈0): ceiling λ/σ = %.4g req/s", f.PeakX)
		}
		fmt.Fprintln(w)
	} else if r.FitError != "" {
		fmt.Fprintf(w, "\nUSL fit: %s\n", r.FitError)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "took %.0f s\n", r.Took)
}
