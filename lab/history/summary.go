package history

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// SampleFunc turns one leg-run into its per-metric values: the function
// the gate makes its baseline samples with, passed in so the history
// holds exactly what the gate judges.
type SampleFunc func(report.Leg) map[baseline.Key]float64

// FromSummary turns a run's, gate's or baseline update's summary into a
// Run. Candidate legs (and the legs of runs without roles) give absolute
// values; a gate that ran --against also gives, for every metric measured
// on both sides of one round (candidate run r, then reference run r, A B
// A B …), the ratio candidate / reference. reference names the reference
// commit (the gate's --against, resolved by the caller); an interrupted
// summary or one with lab errors is refused: its numbers are not trusted.
func FromSummary(sum *report.RunSummary, samples SampleFunc, source, reference string) (Run, error) {
	switch {
	case sum.Interrupted:
		return Run{}, fmt.Errorf("%s: the run was interrupted; its partial numbers do not belong in the history", source)
	case len(sum.LabErrors) > 0:
		return Run{}, fmt.Errorf("%s: %d lab errors (%s): the measurements cannot be trusted", source, len(sum.LabErrors), sum.LabErrors[0])
	case sum.StartedAt.IsZero():
		return Run{}, fmt.Errorf("%s: no started_at: not a hal9-lab summary.json", source)
	}
	r := Run{Time: sum.StartedAt.UTC(), Commit: sum.Commit, Profile: sum.Profile, Command: sum.Command,
		Machine: Fingerprint(sum.Machine), Host: sum.Machine, Source: source}
	against := sum.Gate != nil && sum.Gate.Mode == "against"
	if against {
		r.Reference = reference
		if r.Reference == "" {
			r.Reference = sum.Gate.Against
		}
	}
	refs := map[legRun]map[baseline.Key]float64{}
	cands := map[legRun]map[baseline.Key]float64{}
	for _, l := range sum.Legs {
		lr := legRun{l.Name, max(l.Run, 1)}
		switch l.Role {
		case "reference":
			refs[lr] = samples(l)
		case "", "candidate":
			cands[lr] = samples(l)
		default:
			return Run{}, fmt.Errorf("%s: leg %s run %d has role %q (want candidate or reference)", source, l.Name, l.Run, l.Role)
		}
	}
	for _, lr := range sortedLegRuns(cands) {
		c := cands[lr]
		for _, bk := range sortedKeys(c) {
			v := c[bk]
			if isFinite(v) {
				r.Values = append(r.Values, Value{Key: keyOf(bk), Kind: Absolute, Repetition: lr.run, Value: v})
			}
			ref, ok := refs[lr][bk]
			// A ratio to zero (no errors, nothing dropped on the reference)
			// says nothing; those metrics keep their absolute series only.
			if against && ok && ref != 0 && isFinite(ref) && isFinite(v) {
				r.Values = append(r.Values, Value{Key: keyOf(bk), Kind: Ratio, Repetition: lr.run, Value: v / ref})
			}
		}
	}
	if len(r.Values) == 0 {
		return Run{}, errors.New(source + ": no leg produced measurements (every scenario failed or was skipped)")
	}
	r.ID = runID("summary", r.Command, r.Profile, sum.StartedAt.UTC().Format(time.RFC3339Nano), r.Commit, r.Machine)
	return r, nil
}

// legRun is one repetition of one leg: where a candidate meets its
// reference.
type legRun struct {
	leg string
	run int
}

func sortedLegRuns(m map[legRun]map[baseline.Key]float64) []legRun {
	out := make([]legRun, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b legRun) int {
		if c := strings.Compare(a.leg, b.leg); c != 0 {
			return c
		}
		return a.run - b.run
	})
	return out
}

func sortedKeys(m map[baseline.Key]float64) []baseline.Key {
	keys := make([]baseline.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b baseline.Key) int { return strings.Compare(a.String(), b.String()) })
	return keys
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
