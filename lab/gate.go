package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/backend"
	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/profiles"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// Exit codes of the gate: a regression exits as a failed threshold does
// (k6's convention for a failed check).
const (
	ExitPass      = 0
	ExitRegressed = load.ExitThresholdsFailed
)

// GateOptions configure `hal9-lab gate` and `hal9-lab baseline update`.
type GateOptions struct {
	Options
	Runs int
	// Against builds the server at this git ref in a temporary worktree
	// and interleaves candidate and reference runs (A B A B …). Empty:
	// compare with the stored baseline file.
	Against string
	// ReferenceBin uses an existing reference binary instead of building
	// Against (tests, or a binary built elsewhere).
	ReferenceBin string
	// CandidateEnv / ReferenceEnv are added to the servers of each side
	// (tests inject a slowdown with HAL9_LLM_LATENCY_SCALE).
	CandidateEnv, ReferenceEnv map[string]string
	Rules                      baseline.Rules
	Alpha                      float64
	// BaselinePath is the file compared with (default
	// BaselineDir/<profile>.json).
	BaselinePath string
}

// LegSamples turns one leg-run into the gate's per-run values. The
// rate-limit check is a pass/fail check, not a measurement, and is left
// out; so are scenarios that did not run to the end.
func LegSamples(l report.Leg) map[baseline.Key]float64 {
	out := map[baseline.Key]float64{}
	for _, sc := range l.Scenarios {
		if sc.Name == "ratelimit" || sc.Error != "" || sc.Metrics.HTTPReqs == 0 {
			continue
		}
		m := sc.Metrics
		k := func(metric string) baseline.Key { return baseline.Key{Leg: l.Name, Scenario: sc.Name, Metric: metric} }
		out[k(baseline.ReqDurationP50)] = m.ReqP50
		out[k(baseline.ReqDurationP95)] = m.ReqP95
		out[k(baseline.ReqDurationP99)] = m.ReqP99
		out[k(baseline.IterRespP50)] = m.IterP50
		out[k(baseline.IterRespP95)] = m.IterP95
		out[k(baseline.IterRespP99)] = m.IterP99
		out[k(baseline.AchievedRate)] = m.AchievedRPS
		out[k(baseline.ErrorRate)] = m.ErrorRate
		out[k(baseline.Dropped)] = m.Dropped
		if sc.Server.CacheLookups > 0 {
			out[k(baseline.CacheHitRate)] = sc.Server.CacheHitRate
		}
		if sc.Server.Requests > 0 {
			out[k(baseline.CostPer1K)] = sc.Server.CostPer1K
		}
	}
	return out
}

// collect adds a leg's values to samples.
func collect(s baseline.Samples, l report.Leg) {
	for k, v := range LegSamples(l) {
		s.Add(k, v)
	}
}

// Gate runs the profile's scenarios Runs times per backend and compares
// with the baseline file, or, with Against, with interleaved runs of the
// reference build. The summary's Gate holds the verdicts; its ExitCode is
// 0 (nothing regressed) or 99.
func Gate(ctx context.Context, g GateOptions) (*report.RunSummary, error) {
	if g.Runs < 1 {
		return nil, fmt.Errorf("gate: --runs %d: want at least 1 (the U test needs %d per side to reach p<0.05)", g.Runs, baseline.MinRuns(baseline.Alpha))
	}
	if g.Alpha == 0 {
		g.Alpha = baseline.Alpha
	}
	if g.Rules == nil {
		g.Rules = baseline.DefaultRules()
	}
	var base *baseline.File
	if g.Against == "" && g.ReferenceBin == "" {
		if g.BaselinePath == "" {
			g.BaselinePath = baseline.Path(g.BaselineDir, g.Profile.Name)
		}
		var err error
		if base, err = baseline.Load(g.BaselinePath); err != nil {
			return nil, err
		}
	}
	s, err := newSession(ctx, g.Options)
	if err != nil {
		return nil, err
	}
	defer s.close()
	cand, err := s.binary(ctx)
	if err != nil {
		return nil, err
	}
	ref := g.ReferenceBin
	if ref == "" && g.Against != "" {
		s.prog.step("building the reference server at %s in a temporary git worktree", g.Against)
		t := time.Now()
		ref = filepath.Join(g.OutDir, "bin", "hal9-reference")
		if err := build.AtRef(ctx, g.Root, g.Against, ref); err != nil {
			return nil, err
		}
		s.prog.step("reference built in %s", time.Since(t).Round(100*time.Millisecond))
	}
	candS, refS := baseline.Samples{}, baseline.Samples{}
	err = s.eachBackend(ctx, func(_ int, b *backend.Backend) {
		for run := 1; run <= g.Runs && ctx.Err() == nil; run++ {
			// A B A B …: candidate then reference in each round, on the
			// same infrastructure, so drift of the machine hits both.
			leg := s.runLeg(ctx, legSpec{backend: b, run: run, runs: g.Runs, role: roleIf(ref, "candidate"), bin: cand, env: g.CandidateEnv})
			s.addMeasured(ctx, leg, candS, leg.Name+" "+roleOr(leg.Role, "candidate"))
			if ref != "" && ctx.Err() == nil {
				leg := s.runLeg(ctx, legSpec{backend: b, run: run, runs: g.Runs, role: "reference", bin: ref, env: g.ReferenceEnv})
				s.addMeasured(ctx, leg, refS, leg.Name+" reference")
			}
		}
	})
	if err != nil {
		return nil, err
	}
	s.prog.setLeg("gate")
	gate := &report.Gate{Runs: g.Runs}
	if ref != "" {
		gate.Mode, gate.Against = "against", g.Against
		if gate.Against == "" {
			gate.Against = ref
		}
		gate.Comparison = baseline.CompareSamples(refS, candS, g.Rules, g.Alpha)
	} else {
		gate.Mode, gate.Baseline = "baseline", relTo(g.Root, g.BaselinePath)
		gate.Comparison = baseline.CompareFile(base, candS, g.Rules, g.Alpha)
	}
	gate.Verdict, gate.ExitCode = string(baseline.Pass), ExitPass
	if gate.Comparison.Regressed() {
		gate.Verdict, gate.ExitCode = string(baseline.Regressed), ExitRegressed
	}
	s.mu.Lock()
	s.summary.Gate = gate
	s.mu.Unlock()
	c := gate.Comparison.Counts()
	s.prog.step("gate: %s (%d regressed, %d improved, %d inconclusive, %d pass)", strings.ToUpper(gate.Verdict),
		c[baseline.Regressed], c[baseline.Improved], c[baseline.Inconclusive], c[baseline.Pass])
	return s.finish(ctx)
}

// addMeasured records a leg run and adds its values to into; a leg that
// failed is a lab error (the gate cannot judge, nor a baseline hold, what
// was not measured), unless the run was interrupted. who names it in the
// error: "sqlite candidate".
func (s *session) addMeasured(ctx context.Context, leg report.Leg, into baseline.Samples, who string) {
	s.addLeg(leg)
	if leg.Error != "" && ctx.Err() == nil {
		s.labError("%s run %d failed: %s", who, leg.Run, leg.Error)
	}
	collect(into, leg)
}

func roleOr(role, otherwise string) string {
	if role == "" {
		return otherwise
	}
	return role
}

func roleIf(ref, role string) string {
	if ref == "" {
		return ""
	}
	return role
}

func relTo(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// UpdateBaseline runs the profile Runs times per backend and writes the
// per-run values to BaselineDir/<profile>.json, and the merged profiles to
// BaselineDir/profiles/<profile>/ (for the report's "grew most" diff).
func UpdateBaseline(ctx context.Context, g GateOptions) (*report.RunSummary, string, error) {
	if g.Runs < 1 {
		return nil, "", fmt.Errorf("baseline update: --runs %d: want at least %d so the gate's U test can decide", g.Runs, baseline.MinRuns(baseline.Alpha))
	}
	s, err := newSession(ctx, g.Options)
	if err != nil {
		return nil, "", err
	}
	defer s.close()
	bin, err := s.binary(ctx)
	if err != nil {
		return nil, "", err
	}
	samples := baseline.Samples{}
	err = s.eachBackend(ctx, func(_ int, b *backend.Backend) {
		for run := 1; run <= g.Runs && ctx.Err() == nil; run++ {
			leg := s.runLeg(ctx, legSpec{backend: b, run: run, runs: g.Runs, bin: bin})
			s.addMeasured(ctx, leg, samples, leg.Name)
		}
	})
	if err != nil {
		return nil, "", err
	}
	sum, err := s.finish(ctx)
	if err != nil {
		return sum, "", err
	}
	if ctx.Err() != nil {
		return sum, "", errors.New("interrupted: baseline not written")
	}
	if len(sum.LabErrors) > 0 {
		return sum, "", fmt.Errorf("baseline not written: %d lab errors (see %s/report.md)", len(sum.LabErrors), g.OutDir)
	}
	if len(samples) == 0 {
		return sum, "", errors.New("baseline not written: no leg produced measurements")
	}
	f := baseline.New(g.Profile.Name, sum.Commit, g.Runs, samples, baseline.Unit)
	out := g.BaselinePath
	if out == "" {
		out = baseline.Path(g.BaselineDir, g.Profile.Name)
	}
	if err := f.Save(out); err != nil {
		return sum, "", err
	}
	pdir := BaselineProfileDir(g.BaselineDir, g.Profile.Name)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return sum, out, fmt.Errorf("baseline profiles: %w", err)
	}
	for _, leg := range s.side.recv.Legs() {
		for _, typ := range []string{"cpu", "heap"} {
			if p := s.side.recv.Profile(leg, typ); p != nil {
				if err := profiles.WriteFile(filepath.Join(pdir, profiles.FileName(leg, typ)), p); err != nil {
					return sum, out, err
				}
			}
		}
	}
	return sum, out, nil
}
