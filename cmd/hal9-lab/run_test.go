package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/report"
)

// TestLabFlagErrors: every bad flag of run, gate, baseline and report is
// refused before anything starts, with a message naming it (exit 2).
func TestLabFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		run  func(context.Context, []string) error
		args []string
		want string
	}{
		{"run bad infra", runRun, []string{"--infra", "docker"}, `--infra "docker"`},
		{"run bad backend", runRun, []string{"--backends", "sqlite,mysql"}, `unknown backend "mysql"`},
		{"run bad scale", runRun, []string{"--scale", "-1"}, "--scale"},
		{"run unknown profile", runRun, []string{"--profile", "weekly"}, `profile "weekly"`},
		{"run missing scenario", runRun, []string{"--scenario", "nope.yaml"}, "--scenario nope.yaml"},
		{"run missing binary", runRun, []string{"--hal9-bin", "/nonexistent/hal9"}, "--hal9-bin"},
		{"run stray argument", runRun, []string{"smoke"}, `unexpected argument "smoke"`},
		{"run bad repetitions", runRun, []string{"--repetitions", "-2"}, "--repetitions"},
		{"run too many replicas", runRun, []string{"--replicas", "17"}, "--replicas 17: want 1..16"},
		{"run bad pyroscope", runRun, []string{"--pyroscope-url", "pyroscope:4040"}, "--pyroscope-url"},
		{"run unknown flag", runRun, []string{"--fast"}, "flag provided but not defined"},
		{"run bad server", runRun, []string{"--server", "vm"}, `--server "vm": use process or container`},
		{"run container servers, process infra", runRun, []string{"--server", "container", "--infra", "process"}, "drop --infra process"},
		{"run container servers, PgBouncer", runRun, []string{"--server", "container", "--pgbouncer"}, "drop --pgbouncer"},
		{"run container servers, dynamic binary", runRun, []string{"--server", "container", "--hal9-bin", "/bin/sh"}, "dynamically linked"},
		{"run container servers, loopback Pyroscope", runRun, []string{"--server", "container", "--pyroscope-url", "http://127.0.0.1:4040"}, "give an address they reach"},
		{"gate bad runs", runGate, []string{"--runs", "-1"}, "--runs"},
		{"gate zero runs", runGate, []string{"--runs", "0"}, "--runs 0"},
		{"baseline zero runs", runBaseline, []string{"update", "--runs", "0"}, "--runs 0"},
		{"gate bad alpha", runGate, []string{"--alpha", "1.5"}, "--alpha"},
		{"gate bad min effect", runGate, []string{"--min-effect", "*_ms"}, "METRIC_PATTERN=EFFECT"},
		{"gate bad min effect value", runGate, []string{"--min-effect", "*_ms=lots"}, "want a percentage"},
		{"gate both refs", runGate, []string{"--against", "HEAD", "--reference-bin", os.Args[0]}, "give one"},
		{"baseline without update", runBaseline, []string{"--runs", "3"}, "baseline update"},
		{"baseline bad runs", runBaseline, []string{"update", "--runs", "-4"}, "--runs"},
		{"report no dir", runReport, nil, "exactly one run directory"},
		{"report not a dir", runReport, []string{"/nonexistent"}, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(context.Background(), tt.args)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 {
				t.Fatalf("err = %v, want an exit-2 error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	s := &report.RunSummary{Command: "run", Profile: "smoke", StartedAt: time.Now(), EndedAt: time.Now()}
	if _, err := report.WriteAll(dir, s); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, report.HTMLFile))
	if err := runReport(context.Background(), []string{dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, report.HTMLFile)); err != nil {
		t.Errorf("report.html not re-rendered: %v", err)
	}
}

func TestFinishRunExitCodes(t *testing.T) {
	zero := 0
	pass := &report.RunSummary{Legs: []report.Leg{{Name: "sqlite", Scenarios: []report.Scenario{{Name: "s", Passed: true}}, Server: report.Server{ExitCode: &zero}}}}
	fail := &report.RunSummary{Legs: []report.Leg{{Name: "sqlite", Scenarios: []report.Scenario{{Name: "s", Passed: false}}}}}
	labErr := &report.RunSummary{Legs: pass.Legs, LabErrors: []string{"cost disagrees"}}
	tests := []struct {
		name        string
		s           *report.RunSummary
		interrupted bool
		code        int // 0 nil, -1 plain error
	}{
		{"pass", pass, false, 0},
		{"threshold failed", fail, false, 99},
		{"lab error", labErr, false, -1},
		{"interrupted", pass, true, 130},
		{"nothing ran", &report.RunSummary{}, false, -1},
	}
	for _, tt := range tests {
		err := finishRun(&strings.Builder{}, "dir", tt.s, tt.interrupted)
		var ee *exitError
		switch {
		case tt.code == 0 && err != nil, tt.code == -1 && (err == nil || errors.As(err, &ee)):
			t.Errorf("%s: err = %v", tt.name, err)
		case tt.code > 0 && (!errors.As(err, &ee) || ee.code != tt.code):
			t.Errorf("%s: err = %v, want exit %d", tt.name, err, tt.code)
		}
	}
}
