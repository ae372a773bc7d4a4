package lab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

// session is what a run, gate or baseline update shares across its legs:
// the validated scenarios, the sidecars, the images and defaults of the
// server binaries, the summary being built, lab errors.
type session struct {
	opts     Options
	prog     *progress
	log      *slog.Logger
	plans    []scenarioPlan
	capacity *capacityRun // the profile's capacity: block (capacityleg.go)
	side     *sidecars
	images   *build.Images  // --server container: each binary's image
	defaults serve.Defaults // each binary's `hal9 config` defaults

	mu        sync.Mutex // guards what follows
	summary   *report.RunSummary
	labErrors []string
}

// scenarioPlan is one scenario of the session, loaded and scaled.
type scenarioPlan struct {
	file      string
	plan      *load.Plan
	scale     float64
	rateLimit float64
	faults    []faults.Spec // its timeline, scaled
}

// newSession validates the options and every scenario (a bad file fails
// before any infrastructure starts), builds nothing yet, and starts the
// sidecars.
func newSession(ctx context.Context, opts Options) (*session, error) {
	if err := opts.settle(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	s := &session{opts: opts, prog: newProgress(opts.Progress), log: opts.Logger}
	s.images = &build.Images{Root: opts.Root, Progress: s.prog.step}
	var err error
	if s.plans, err = loadPlans(opts); err != nil {
		return nil, err
	}
	if s.capacity, err = loadCapacity(opts); err != nil {
		return nil, err
	}
	s.checkOpenFiles()
	s.summary = &report.RunSummary{Version: report.Version, Command: opts.Command, Profile: opts.Profile.Name, StartedAt: time.Now().UTC(),
		Commit: build.GitCommit(opts.Root), Machine: baseline.DescribeMachine(), Seed: report.DefaultSeed()}
	if s.side, err = startSidecars(ctx, opts, s.prog.step); err != nil {
		return nil, err
	}
	return s, nil
}

// loadPlans reads the profile's scenarios (or --scenario's) with their
// scale, rate limit and fault timeline.
func loadPlans(opts Options) ([]scenarioPlan, error) {
	specs := opts.Profile.Scenarios
	if len(opts.Scenarios) > 0 {
		specs = nil
		for _, f := range opts.Scenarios {
			specs = append(specs, profile.Scenario{File: f})
		}
	}
	var plans []scenarioPlan
	for _, ps := range specs {
		plan, _, err := workload.Load(profile.Resolve(opts.Root, ps.File))
		if err != nil {
			return nil, err
		}
		sc := ps.Scale
		if sc == 0 {
			sc = 1
		}
		limit := ps.RateLimit
		if limit == 0 && opts.Profile.Server != nil && opts.Profile.Server.RateLimit != nil {
			limit = *opts.Profile.Server.RateLimit
		}
		sp := scenarioPlan{file: ps.File, plan: plan, scale: sc * opts.Profile.Scale * opts.Scale, rateLimit: limit}
		if sp.faults, err = opts.Profile.ScenarioFaults(plan, sp.scale, opts.Backends, opts.Infra); err != nil {
			return nil, err
		}
		plans = append(plans, sp)
	}
	return plans, nil
}

// checkOpenFiles warns when the open-file limit cannot hold a connection
// per VU the profile may run (plus a margin for the lab's own files): the
// stress ramp's 5,000 VUs need 5,000 sockets in the lab and as many in the
// server.
func (s *session) checkOpenFiles() {
	need := 0
	for _, sp := range s.plans {
		n := 0
		for _, sc := range sp.plan.Scenarios {
			scaled := sc.Scaled(sp.scale)
			n += scaled.MaxVUCount()
		}
		need = max(need, n)
	}
	if c := s.capacity; c != nil {
		need = max(need, 2*c.spec.Params.MaxVUs) // settle and measure pools
	}
	limit, ok := openFileLimit()
	if ok && need > 0 && uint64(need)+256 > limit {
		s.prog.step("WARNING: the open-file limit is %d and the profile may hold %d connections: raise it (ulimit -n %d, or LimitNOFILE in a systemd unit) or connections will fail with 'too many open files'", limit, need, need+1024)
	}
}

// close stops what newSession started.
func (s *session) close() { s.side.close() }

// labError records a lab error (a measurement the lab cannot trust).
func (s *session) labError(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.labErrors = append(s.labErrors, msg)
	s.mu.Unlock()
	s.prog.step("LAB ERROR: %s", msg)
}

// binary returns the server binary to use, building Root/bin/hal9 once
// when none was given.
func (s *session) binary(ctx context.Context) (string, error) {
	if s.opts.HalBin != "" {
		return s.opts.HalBin, nil
	}
	out := filepath.Join(s.opts.Root, "bin", "hal9")
	s.prog.step("building %s (go build ./cmd/hal9)", out)
	t := time.Now()
	if err := build.Server(ctx, s.opts.Root, out); err != nil {
		return "", err
	}
	s.prog.step("built in %s", time.Since(t).Round(100*time.Millisecond))
	s.opts.HalBin = out
	return out, nil
}

// addLeg records a leg run in the summary.
func (s *session) addLeg(leg report.Leg) {
	s.mu.Lock()
	s.summary.Legs = append(s.summary.Legs, leg)
	s.mu.Unlock()
}

// noteDepartures records departures of one leg in the summary: each text
// once, with the legs it applies to.
func (s *session) noteDepartures(leg string, texts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range texts {
		i := slices.IndexFunc(s.summary.Departures, func(d report.Departure) bool { return d.Text == t })
		if i < 0 {
			s.summary.Departures = append(s.summary.Departures, report.Departure{Text: t, Legs: []string{leg}})
			continue
		}
		if d := &s.summary.Departures[i]; !slices.Contains(d.Legs, leg) {
			d.Legs = append(d.Legs, leg)
		}
	}
}

// needsProcesses: a fault kills, stops or pauses PostgreSQL or Redis.
func needsProcesses(plans []scenarioPlan) bool {
	for _, sp := range plans {
		for _, f := range sp.faults {
			if f.Target == faults.Redis || f.Target == faults.Postgres {
				return true
			}
		}
	}
	return false
}

// hasFaults: some scenario of the session has a timeline.
func hasFaults(plans []scenarioPlan) bool {
	return slices.ContainsFunc(plans, func(sp scenarioPlan) bool { return len(sp.faults) > 0 })
}
