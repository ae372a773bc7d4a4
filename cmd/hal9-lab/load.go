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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

const loadUsage = `usage: hal9-lab load SCENARIO.yaml --target URL [flags]
       hal9-lab load merge SUMMARY.json... [--summary-export FILE]

Runs a scenario file against a running server and prints a k6-style summary.
Exit status 99 when a threshold failed (k6's convention), 1 on errors.
merge combines the summaries of segment runs (--segment i/n) into one.

flags:`

// runLoad is `hal9-lab load`: one scenario file against any target.
func runLoad(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "merge" {
		return runLoadMerge(args[1:])
	}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	target := fs.String("target", os.Getenv("HAL9_TARGET"), "base URL of the server under test (env HAL9_TARGET), e.g. http://127.0.0.1:8080")
	export := fs.String("summary-export", "", "write the k6-shaped summary JSON to this file")
	segment := fs.String("segment", "", "run only segment i/n of the test (e.g. 1/2); merge the summaries with 'hal9-lab load merge'")
	scale := fs.Float64("scale", 1, "multiply durations and VU/rate counts (0.1: a tenth; minimum 1 VU and 1 s)")
	out := fs.String("out", "", "directory for summary.json (created if missing)")
	quiet := fs.Bool("quiet", false, "no live progress")
	metricsAddr := fs.String("metrics-addr", "", "serve the hal9lab_* metrics on http://ADDR/metrics during the run (e.g. 127.0.0.1:9191)")
	runID := fs.String("run-id", "", "name of this test in user names; give the segments of one test the same one (default random)")
	verbose := fs.Bool("v", false, "log at debug level")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), loadUsage)
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		fs.Usage()
		return fmt.Errorf("load: want exactly one scenario file, got %d", len(files))
	}
	if *target == "" {
		return errors.New("load: --target is required (the server's base URL, e.g. http://127.0.0.1:8080)")
	}
	if !strings.HasPrefix(*target, "http://") && !strings.HasPrefix(*target, "https://") {
		return fmt.Errorf("load: --target %q must be an http:// or https:// URL", *target)
	}
	if !(*scale > 0 && *scale <= load.MaxScale) {
		return fmt.Errorf("load: --scale %v must be in (0, %d] (0.1 is a tenth of the plan)", *scale, load.MaxScale)
	}
	seg, err := load.ParseSegment(*segment)
	if err != nil {
		return fmt.Errorf("load: --segment: %w", err)
	}
	plan, wl, err := workload.Load(files[0])
	if err != nil {
		return err
	}
	// Output paths are checked before the run, not found unwritable after it.
	if err := checkOutputs(*export, *out); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("load: --metrics-addr: %w", err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(os.Stderr, "hal9lab metrics on http://%s/metrics\n", ln.Addr())
	}
	var progress io.Writer = os.Stderr
	if *quiet {
		progress = nil
	}
	res, err := load.Run(ctx, plan, load.Options{
		Target: *target, Workload: wl, Scale: *scale, Segment: seg, Progress: progress,
		Registerer: reg, Logger: logger, RunID: *runID,
	})
	if err != nil {
		return err
	}
	return finishLoad(res.Summary, *export, *out, res.Aborted)
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
		return &exitError{code: 99, err: errors.New("thresholds failed")}
	}
	if aborted {
		return errors.New("the test was interrupted before its end (the summary covers what ran)")
	}
	return nil
}

func runLoadMerge(args []string) error {
	fs := flag.NewFlagSet("load merge", flag.ContinueOnError)
	export := fs.String("summary-export", "", "write the merged summary JSON to this file")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hal9-lab load merge SUMMARY.json... [--summary-export FILE]\n\nflags (before or after the files):")
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) < 1 {
		return errors.New("load merge: give the summary files of the segments")
	}
	if err := checkOutputs(*export, ""); err != nil {
		return err
	}
	var sums []*load.Summary
	for _, f := range files {
		s, err := load.ReadSummary(f)
		if err != nil {
			return err
		}
		sums = append(sums, s)
	}
	m, err := load.MergeSummaries(sums...)
	if err != nil {
		return err
	}
	return finishLoad(m, *export, "", false)
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
