package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// multiFlag collects a repeatable flag (--scenario A --scenario B, or A,B).
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*m = append(*m, s)
		}
	}
	return nil
}

// labFlags are the flags run, gate and baseline share.
type labFlags struct {
	profile    string
	backends   string
	scenarios  multiFlag
	out        string
	infra      string
	server     string
	requireAll bool
	prometheus bool
	hal9Bin    string
	scale      float64
	pyroscope  string
	verbose    bool
	replicas   int
	pgbouncer  bool
}

func (f *labFlags) register(fs *flag.FlagSet, defProfile string) {
	fs.StringVar(&f.profile, "profile", defProfile, "profile: smoke, nightly, full (scenarios/profiles/NAME.yaml) or a .yaml path")
	fs.StringVar(&f.backends, "backends", "", "comma-separated legs: sqlite,postgres,postgres+redis (default: the profile's)")
	fs.Var(&f.scenarios, "scenario", "scenario file to run instead of the profile's (repeatable)")
	fs.StringVar(&f.out, "out", "", "report directory (default reports/runs/<UTC time>)")
	fs.StringVar(&f.infra, "infra", "auto", "how to get PostgreSQL and Redis: auto|external|testcontainers|process")
	fs.StringVar(&f.server, "server", "process", "where the servers run: process, or container (the server's image, built when missing, on the network of PostgreSQL and Redis containers: implies --infra testcontainers and a Docker engine on this machine)")
	fs.BoolVar(&f.requireAll, "require-all", false, "fail instead of skipping a backend that cannot be had")
	fs.BoolVar(&f.prometheus, "prometheus", false, "run a real Prometheus and report dashboard and rule queries without data")
	fs.StringVar(&f.hal9Bin, "hal9-bin", "", "use this server binary instead of building bin/hal9")
	fs.Float64Var(&f.scale, "scale", 1, "multiply the profile's durations and user counts (quick tries: 0.2)")
	fs.StringVar(&f.pyroscope, "pyroscope-url", "", "send the servers' profiles to this Pyroscope instead of the lab's own receiver")
	fs.BoolVar(&f.verbose, "v", false, "log the lab's debug messages to stderr")
	fs.IntVar(&f.replicas, "replicas", 0, fmt.Sprintf("servers per PostgreSQL leg, on one database and one Redis, behind HAProxy (1..%d; default: the profile's replicas, else 1)", profile.MaxReplicas))
	fs.BoolVar(&f.pgbouncer, "pgbouncer", false, "put PgBouncer (transaction pooling) between the servers and PostgreSQL (default: the profile's pgbouncer)")
}

// options builds lab.Options from the flags; lab.Options.Validate checks
// them.
func (f *labFlags) options(command string) (lab.Options, error) {
	var o lab.Options
	root, err := repoRoot()
	if err != nil {
		return o, err
	}
	if f.scale == 0 { // the library's 0 means 1; a flag of 0 is a mistake
		return o, fmt.Errorf("--scale %v: want a positive factor (e.g. 0.2 for a quick try)", f.scale)
	}
	p, err := profile.Load(root, f.profile)
	if err != nil {
		return o, fmt.Errorf("--profile: %w", err)
	}
	o = lab.Options{Root: root, Profile: p, Infra: f.infra, RequireAll: f.requireAll, Prometheus: f.prometheus,
		Scale: f.scale, Command: command, BaselineDir: filepath.Join(root, "reports", "baselines"), Progress: os.Stderr,
		Replicas: f.replicas, PgBouncer: f.pgbouncer, Server: f.server, HalBin: f.hal9Bin, PyroscopeURL: f.pyroscope}
	if f.backends != "" {
		if o.Backends, err = profile.ParseBackends(f.backends); err != nil {
			return o, fmt.Errorf("--backends: %w", err)
		}
	}
	for _, s := range f.scenarios {
		path := s
		if !filepath.IsAbs(path) {
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
		}
		if _, err := os.Stat(path); err != nil {
			return o, fmt.Errorf("--scenario %s: %w", s, err)
		}
		o.Scenarios = append(o.Scenarios, path)
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	o.OutDir = f.out
	if o.OutDir == "" {
		o.OutDir = filepath.Join(root, "reports", "runs", time.Now().UTC().Format("20060102T150405Z"))
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return o, nil
}

// repoRoot is the directory holding go.mod and scenarios/, searched
// upwards from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "scenarios")); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run hal9-lab inside the hal9-lab repository (no go.mod with scenarios/ above %s)", dir)
		}
	}
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))}
	}
	return nil
}

// runRun is `hal9-lab run` (what `make lab` calls). Exit codes: 0 all
// thresholds passed; 99 a threshold failed; 1 a lab error or setup error;
// 130 interrupted (the partial report is still written).
func runRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f labFlags
	f.register(fs, "smoke")
	reps := fs.Int("repetitions", 0, "run each leg this many times (default: the profile's)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hal9-lab run [flags]\n\nStarts each backend leg (infra, server, warm-up, scenarios, /metrics before and after),\nthen writes summary.json, report.md, report.html, junit.xml and profiles/ into --out.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *reps < 0 {
		return &exitError{code: 2, err: fmt.Errorf("--repetitions %d: want 1 or more", *reps)}
	}
	o, err := f.options("run")
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	o.Repetitions = *reps
	sum, err := lab.Run(ctx, o)
	if err != nil {
		return err
	}
	return finishRun(os.Stdout, o.OutDir, sum, ctx.Err() != nil)
}

// finishRun prints where the reports are and maps the outcome to the exit
// code.
func finishRun(w io.Writer, dir string, sum *report.RunSummary, interrupted bool) error {
	fmt.Fprintf(w, "\n%s\nreports: %s/{report.md,report.html,summary.json,junit.xml}\n", verdictLine(sum), dir)
	switch v := sum.Verdict(); {
	case interrupted:
		return &exitError{code: 130, err: errors.New("interrupted: partial report written")}
	case v == "failed":
		return &exitError{code: load.ExitThresholdsFailed, err: errors.New("a threshold failed (see report.md)")}
	case v == "lab error":
		return errors.New("lab errors: the measurements cannot be trusted (see report.md)")
	case v == "nothing ran":
		return errors.New("no leg ran (every backend was skipped)")
	}
	return nil
}

func verdictLine(sum *report.RunSummary) string {
	var legs []string
	for _, l := range sum.Legs {
		for _, sc := range l.Scenarios {
			st := "pass"
			if !sc.Passed {
				st = "FAIL"
			}
			legs = append(legs, fmt.Sprintf("%s/%s %s p95=%.1fms", l.Name, sc.Name, st, sc.Metrics.ReqP95))
		}
	}
	for _, l := range sum.Legs {
		if c := l.Capacity; c != nil && c.Search != nil && c.Search.Knee.Found {
			legs = append(legs, fmt.Sprintf("%s knee %.4g req/s (%s): set %s", l.Name, c.Search.Knee.RequestRate, c.Search.Knee.LimitedBy, report.RatingFlag(report.RatingOf(l))))
		} else if c != nil {
			legs = append(legs, l.Name+" no knee")
		}
	}
	for _, s := range sum.Skipped {
		legs = append(legs, s.Leg+" skipped")
	}
	return fmt.Sprintf("lab %s: %s (%s)", sum.Profile, strings.ToUpper(sum.Verdict()), strings.Join(legs, "; "))
}
