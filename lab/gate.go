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
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// Exit codes of the gate: a regression exits as a failed threshold does
// (k6's convention for a failed check); a gate none of whose series could
// be judged exits ExitInconclusive, never 0.
const (
	ExitPass         = 0
	ExitRegressed    = load.ExitThresholdsFailed
	ExitInconclusive = 3
)

// ErrCannotJudge is returned, before anything runs, by a gate whose runs
// (the baseline's and its own) cannot reach its α with the U test, and by
// a baseline update with fewer runs than a gate needs: a bad flag
// combination (exit 2).
var ErrCannotJudge = errors.New("too few runs for the gate's U test")

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

// CheckPower tells whether a gate of runs against a baseline of
// baseRuns can reach alpha with the exact U test, and if not, how many
// runs it needs (ErrCannotJudge).
func CheckPower(baseRuns, runs int, alpha float64, baselineName string) error {
	if p := baseline.MinPossibleP(baseRuns, runs); p > alpha {
		need := baseline.RunsNeeded(baseRuns, alpha)
		how := fmt.Sprintf("use --runs %d or more (%d + %d can reach it)", need, baseRuns, need)
		if need == 0 {
			how = fmt.Sprintf("re-measure %s with more runs", baselineName)
		}
		return fmt.Errorf("%w: %d runs against %d of %s give a smallest possible p of %.3f > α=%g, so nothing could be judged: %s",
			ErrCannotJudge, runs, baseRuns, baselineName, p, alpha, how)
	}
	return nil
}

// Gate runs the profile's scenarios Runs times per backend and compares
// with the baseline file, or, with Against, with interleaved runs of the
// reference build. The summary's Gate holds the verdicts; its ExitCode is
// 0 (nothing regressed), 99 (regressed) or 3 (no series could be judged).
// Runs too few to reach Alpha against the baseline's are refused before
// anything runs (ErrCannotJudge).
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
		if err := CheckPower(base.Runs, g.Runs, g.Alpha, g.BaselinePath); err != nil {
			return nil, err
		}
		// The baseline's profiles live beside it (UpdateBaseline).
		g.BaselineDir = filepath.Dir(g.BaselinePath)
	} else if err := CheckPower(g.Runs, g.Runs, g.Alpha, "the reference's runs"); err != nil {
		return nil, err
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
	partial := append(readings.DropPartialOps(candS, g.Runs), readings.DropPartialOps(refS, g.Runs)...)
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
	for i := range gate.Comparison.Results {
		gate.Comparison.Results[i].Bound = readings.Bound(gate.Comparison.Results[i].Key)
	}
	if len(partial) > 0 {
		gate.Comparison.Warnings = append(gate.Comparison.Warnings, fmt.Sprintf("%d per-operation series left out: not every run had enough requests of the op (%s)", len(partial), keyNames(partial)))
	}
	switch {
	case gate.Comparison.Regressed():
		gate.Verdict, gate.ExitCode = string(baseline.Regressed), ExitRegressed
	case !gate.Comparison.Judged():
		gate.Verdict, gate.ExitCode = string(baseline.Inconclusive), ExitInconclusive
	default:
		gate.Verdict, gate.ExitCode = string(baseline.Pass), ExitPass
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
	readings.AddLeg(into, leg)
}

// keyNames lists keys as leg/scenario/op/metric, at most 5 of them.
func keyNames(keys []baseline.Key) string {
	var names []string
	for i, k := range keys {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(keys)-5))
			break
		}
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
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
// per-run values to BaselinePath (default BaselineDir/<profile>.json), and
// the merged profiles beside it, in profiles/<profile>/ (for the report's
// "grew most" diff). Fewer runs than a gate of as many runs needs to
// reach α are refused (ErrCannotJudge).
func UpdateBaseline(ctx context.Context, g GateOptions) (*report.RunSummary, string, error) {
	if n := baseline.MinRuns(baseline.Alpha); g.Runs < n {
		return nil, "", fmt.Errorf("baseline update: --runs %d: %w: a gate of as many runs could judge nothing (smallest possible p %.3f > %g); use --runs %d or more",
			g.Runs, ErrCannotJudge, baseline.MinPossibleP(g.Runs, g.Runs), baseline.Alpha, n)
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
	readings.DropPartialOps(samples, g.Runs)
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
	pdir := BaselineProfileDir(filepath.Dir(out), g.Profile.Name)
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
