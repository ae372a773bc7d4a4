package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hal9-lab/hal9-lab/internal/durationflag"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

const loadUsage = `usage: hal9-lab load SCENARIO.yaml --target URL [flags]
       hal9-lab load merge SUMMARY.json... | --dir DIR [--expect N --wait 10m] [--summary-export FILE]
       hal9-lab load kubernetes --segments N --out DIR [flags]

Runs a scenario file against a running server and prints a k6-style summary.
Exit status 99 when a threshold failed (k6's convention), 1 on errors.
merge combines the summaries of segment runs (--segment i/n) into one.
kubernetes renders the distributed load test (deploy/kubernetes/loadtest).

flags:`

// loadFlags are the flags of `hal9-lab load`.
type loadFlags struct {
	target, export, segment, out, metricsAddr, runID, startAt string
	ledger, adminURL                                          string // loadfaults.go
	scale                                                     float64
	quiet, verbose, noThresholdExit                           bool
	startLateMax                                              time.Duration
}

// newLoadFlagSet is the flag set of `hal9-lab load`; getenv gives the
// defaults read from the environment (HAL9_TARGET).
func newLoadFlagSet(f *loadFlags, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&f.target, "target", getenv("HAL9_TARGET"), "base URL of the server under test (env HAL9_TARGET), e.g. http://127.0.0.1:8080")
	fs.StringVar(&f.export, "summary-export", "", "write the k6-shaped summary JSON to this file")
	fs.StringVar(&f.segment, "segment", "", "run only segment i/n of the test (e.g. 1/2); auto/n takes i from JOB_COMPLETION_INDEX+1 (an Indexed Job's pod); merge the summaries with 'hal9-lab load merge'")
	fs.Float64Var(&f.scale, "scale", 1, "multiply durations and VU/rate counts (0.1: a tenth; minimum 1 VU and 1 s)")
	fs.StringVar(&f.out, "out", "", "directory for summary.json (created if missing)")
	fs.BoolVar(&f.quiet, "quiet", false, "no live progress")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve the hal9lab_* metrics on http://ADDR/metrics during the run (e.g. 127.0.0.1:9191)")
	fs.StringVar(&f.runID, "run-id", "", "name of this test in user names; give the segments of one test the same one (default random)")
	fs.StringVar(&f.startAt, "start-at", "", "RFC 3339 time at which to start the executors, after the workload's setup (segments of one test start together); refused when already past by more than --start-late-max")
	durationflag.Var(fs, &f.startLateMax, "start-late-max", 10*time.Second, "how far past --start-at a run may still begin")
	fs.BoolVar(&f.noThresholdExit, "no-threshold-exit", false, "exit 0 even when a threshold fails (a segment whose merged summary is judged by 'hal9-lab load merge')")
	fs.StringVar(&f.ledger, "ledger", "", "write every write the server acknowledged to FILE (JSON Lines) and read each back through the API as its owner afterwards (visibility, not durability); a loss exits 99")
	fs.StringVar(&f.adminURL, "admin-url", "", "the server's admin listener (http://HOST:PORT) for the scenario's LLM faults (PUT /admin/llm/faults); the only faults injectable into a server the lab did not start")
	fs.BoolVar(&f.verbose, "v", false, "log at debug level")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), loadUsage)
		fs.PrintDefaults()
	}
	return fs
}

// loadArgs is a parsed and checked `hal9-lab load` command line.
type loadArgs struct {
	loadFlags
	file  string
	seg   load.Segment
	start time.Time // --start-at; zero: start at once
}

// parseLoadArgs parses and checks a `hal9-lab load` command line without
// running anything (the scenario file is read later). getenv gives
// HAL9_TARGET and JOB_COMPLETION_INDEX; now judges --start-at.
func parseLoadArgs(args []string, getenv func(string) string, now time.Time) (*loadArgs, error) {
	var a loadArgs
	fs := newLoadFlagSet(&a.loadFlags, getenv)
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(files) != 1 {
		fs.Usage()
		return nil, fmt.Errorf("load: want exactly one scenario file, got %d", len(files))
	}
	a.file = files[0]
	if a.target == "" {
		return nil, errors.New("load: --target is required (the server's base URL, e.g. http://127.0.0.1:8080)")
	}
	if !strings.HasPrefix(a.target, "http://") && !strings.HasPrefix(a.target, "https://") {
		return nil, fmt.Errorf("load: --target %q must be an http:// or https:// URL", a.target)
	}
	if !(a.scale > 0 && a.scale <= load.MaxScale) {
		return nil, fmt.Errorf("load: --scale %v must be in (0, %d] (0.1 is a tenth of the plan)", a.scale, load.MaxScale)
	}
	if a.seg, err = resolveSegment(a.segment, getenv); err != nil {
		return nil, fmt.Errorf("load: --segment: %w", err)
	}
	if a.startAt != "" {
		if a.start, err = checkStartAt(a.startAt, a.startLateMax, now); err != nil {
			return nil, err
		}
	}
	return &a, nil
}

// resolveSegment reads --segment: "", "i/n", or "auto/n" with i from an
// Indexed Job's JOB_COMPLETION_INDEX (0-based, so i = index+1).
func resolveSegment(s string, getenv func(string) string) (load.Segment, error) {
	n, ok := strings.CutPrefix(s, "auto/")
	if !ok {
		return load.ParseSegment(s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 1 {
		return load.Segment{}, fmt.Errorf("%q: want auto/n with n ≥ 1 segments, e.g. auto/4", s)
	}
	raw := getenv("JOB_COMPLETION_INDEX")
	if raw == "" {
		return load.Segment{}, fmt.Errorf("%q: JOB_COMPLETION_INDEX is not set; auto takes the segment from the pod of an Indexed Job (completionMode: Indexed), elsewhere give i/%d", s, count)
	}
	idx, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil || idx < 0 {
		return load.Segment{}, fmt.Errorf("%q: JOB_COMPLETION_INDEX=%q is not an index 0..%d", s, raw, count-1)
	}
	if idx >= count {
		return load.Segment{}, fmt.Errorf("%q: JOB_COMPLETION_INDEX=%d is out of range for %d segments (0..%d): the Job's completions must equal n", s, idx, count, count-1)
	}
	return load.Segment{Index: idx + 1, Count: count}, nil
}

// maxStartAhead bounds --start-at: further ahead is a typo, not a plan.
const maxStartAhead = 24 * time.Hour

// checkStartAt parses --start-at and refuses a time already past by more
// than lateMax or more than a day ahead.
func checkStartAt(raw string, lateMax time.Duration, now time.Time) (time.Time, error) {
	at, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, fmt.Errorf("load: --start-at %q: want an RFC 3339 time such as %s (for Kubernetes, render the Job with 'hal9-lab load kubernetes')",
			raw, now.UTC().Add(time.Minute).Truncate(time.Second).Format(time.RFC3339))
	}
	switch late := now.Sub(at); {
	case late > lateMax:
		return time.Time{}, fmt.Errorf("load: --start-at %s was %s ago, more than --start-late-max %s: the other segments have started without this one; launch the test again with a later start",
			at.UTC().Format(time.RFC3339Nano), late.Round(time.Millisecond), lateMax)
	case -late > maxStartAhead:
		return time.Time{}, fmt.Errorf("load: --start-at %s is %s ahead, more than %s: check the date", at.UTC().Format(time.RFC3339Nano), (-late).Round(time.Second), maxStartAhead)
	}
	return at, nil
}

// runLoad is `hal9-lab load`: one scenario file against any target.
func runLoad(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "merge":
			return runLoadMerge(ctx, args[1:])
		case "kubernetes":
			return runLoadKubernetes(args[1:], os.Stdout)
		}
	}
	a, err := parseLoadArgs(args, os.Getenv, time.Now())
	if err != nil {
		return err
	}
	plan, wl, err := workload.Load(a.file)
	if err != nil {
		return err
	}
	// Output paths are checked before the run, not found unwritable after it.
	if err := checkOutputs(a.export, a.out); err != nil {
		return err
	}
	lf, err := prepareLoadFaults(ctx, a, plan, wl)
	if err != nil {
		return err
	}
	wl = lf.workload
	level := slog.LevelWarn
	if a.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	if a.metricsAddr != "" {
		ln, err := net.Listen("tcp", a.metricsAddr)
		if err != nil {
			return fmt.Errorf("load: --metrics-addr: %w", err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(os.Stderr, "hal9lab metrics on http://%s/metrics\n", ln.Addr())
	}
	var progress io.Writer = os.Stderr
	if a.quiet {
		progress = nil
	}
	if !a.start.IsZero() {
		wl = load.StartAt(wl, a.start)
		fmt.Fprintf(os.Stderr, "starting at %s (in %s, after the setup)\n", a.start.UTC().Format(time.RFC3339Nano), time.Until(a.start).Round(time.Millisecond))
	}
	res, err := load.Run(ctx, plan, load.Options{
		Target: a.target, Workload: wl, Scale: a.scale, Segment: a.seg, Progress: progress,
		Registerer: reg, Logger: logger, RunID: a.runID, Transport: lf.transport(),
	})
	if err != nil {
		return err
	}
	if h := res.Summary.Hal9Lab; h != nil && !a.start.IsZero() {
		at := a.start.UTC()
		h.StartAt = &at
		if late := h.Started.Sub(at); late > a.startLateMax {
			h.Warnings = append(h.Warnings, fmt.Sprintf("started %s after --start-at (the setup took longer than the wait): more than --start-late-max %s", late.Round(time.Millisecond), a.startLateMax))
		}
	}
	err = finishLoad(res.Summary, a.export, a.out, res.Aborted)
	ferr := lf.finish(ctx, os.Stdout) // after the summary: the faults' verdicts and the ledger check
	if err != nil {
		var ee *exitError
		if a.noThresholdExit && errors.As(err, &ee) && ee.code == load.ExitThresholdsFailed {
			fmt.Fprintln(os.Stderr, "thresholds failed in this segment; exit 0 (--no-threshold-exit): the merged summary is judged")
			return nil
		}
		return err
	}
	return ferr
}

func finishLoad(s *load.Summary, export, out string, aborted bool) error {
	if err := load.WriteText(os.Stdout, s); err != nil {
		return err
	}
	if export != "" {
		if err := load.WriteSummary(export, s); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "summary: %s\n", export)
	}
	if out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return fmt.Errorf("load: --out: %w", err)
		}
		p := filepath.Join(out, "summary.json")
		if err := load.WriteSummary(p, s); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "summary: %s\n", p)
	}
	if s.Hal9Lab != nil && !s.Hal9Lab.ThresholdsOK {
		return &exitError{code: load.ExitThresholdsFailed, err: errors.New("thresholds failed")}
	}
	if aborted {
		return errors.New("the test was interrupted before its end (the summary covers what ran)")
	}
	return nil
}

// mergeFlags are the flags of `hal9-lab load merge`.
type mergeFlags struct {
	export, dir string
	expect      int
	wait        time.Duration
}

// newMergeFlagSet is the flag set of `hal9-lab load merge`.
func newMergeFlagSet(f *mergeFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("load merge", flag.ContinueOnError)
	fs.StringVar(&f.export, "summary-export", "", "write the merged summary JSON to this file")
	fs.StringVar(&f.dir, "dir", "", "merge the summaries in DIR/*/summary.json (what 'hal9-lab load --out DIR/NAME' writes) instead of listed files")
	fs.IntVar(&f.expect, "expect", 0, "require exactly this many segments, 1/N … N/N, each once")
	durationflag.Var(fs, &f.wait, "wait", 0, "with --dir and --expect: wait up to this long for the N summaries to appear (e.g. 10m)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hal9-lab load merge SUMMARY.json... [--summary-export FILE]\n       hal9-lab load merge --dir DIR [--expect N [--wait 10m]] [--summary-export FILE]\n\nThe thresholds are judged on the merged result: exit 99 when one fails.\n\nflags (before or after the files):")
		fs.PrintDefaults()
	}
	return fs
}

// parseMergeArgs parses and checks a `hal9-lab load merge` command line.
func parseMergeArgs(args []string) (mergeFlags, []string, error) {
	var f mergeFlags
	files, err := parseInterspersed(newMergeFlagSet(&f), args)
	if err != nil {
		return f, nil, err
	}
	switch {
	case f.dir != "" && len(files) > 0:
		return f, nil, fmt.Errorf("load merge: give summary files or --dir %s, not both", f.dir)
	case f.dir == "" && len(files) < 1:
		return f, nil, errors.New("load merge: give the summary files of the segments (or --dir DIR)")
	case f.expect < 0:
		return f, nil, fmt.Errorf("load merge: --expect %d must be at least 1", f.expect)
	case f.wait > 0 && (f.dir == "" || f.expect == 0):
		return f, nil, errors.New("load merge: --wait needs --dir and --expect (it waits for the N summaries to appear in DIR)")
	}
	return f, files, nil
}

func runLoadMerge(ctx context.Context, args []string) error {
	f, files, err := parseMergeArgs(args)
	if err != nil {
		return err
	}
	if err := checkOutputs(f.export, ""); err != nil {
		return err
	}
	var sums []*load.Summary
	if f.dir != "" {
		sums, err = load.AwaitSummaries(ctx, f.dir, f.expect, f.wait, time.Second, func(found int) {
			fmt.Fprintf(os.Stderr, "waiting up to %s for %d summaries in %s (%d there)\n", f.wait, f.expect, f.dir, found)
		})
		if err != nil {
			err = fmt.Errorf("load merge: %w", err)
		}
	} else {
		sums, err = load.ReadSummaries(files)
	}
	if err != nil {
		return err
	}
	if f.expect > 0 {
		if err := load.CheckSegments(sums, f.expect); err != nil {
			return fmt.Errorf("load merge: --expect %d: %w", f.expect, err)
		}
	}
	m, err := load.MergeSummaries(sums...)
	if err != nil {
		return err
	}
	return finishLoad(m, f.export, "", false)
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, which it returns in order ("--" ends flags).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		// flag.Parse stops at "--" and drops it: everything after is positional.
		if n := len(rest) - fs.NArg(); n > 0 && rest[n-1] == "--" {
			return append(pos, fs.Args()...), nil
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}

// checkOutputs makes sure the summary files can be written before the
// test runs: --summary-export's directory must exist and be writable;
// --out is created if missing and must be writable.
func checkOutputs(export, out string) error {
	if export != "" {
		if fi, err := os.Stat(export); err == nil && fi.IsDir() {
			return fmt.Errorf("load: --summary-export %s is a directory; give a file name (or use --out DIR)", export)
		}
		if err := writableDir(filepath.Dir(export)); err != nil {
			return fmt.Errorf("load: --summary-export %s: %w", export, err)
		}
	}
	if out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return fmt.Errorf("load: --out %s: cannot create the directory: %w", out, err)
		}
		if err := writableDir(out); err != nil {
			return fmt.Errorf("load: --out %s: %w", out, err)
		}
	}
	return nil
}

// writableDir checks dir exists and a file can be created in it.
func writableDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s does not exist (create it first): %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".hal9-lab-write-test-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
