package history

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
)

// Directions of a change point.
const (
	Regression  = "regression"
	Improvement = "improvement"
)

// Options of a check (DefaultOptions: `hal9-lab history check`'s).
type Options struct {
	Config
	// Window: a regression among a series' last Window points fails the
	// check.
	Window int
	// MinChange is the smallest step reported, relative to the level
	// before it (0.02 = 2 %); for metrics the gate judges in absolute
	// points (error and cache hit rates) it is half the gate's minimum
	// effect in points instead, and ratios are always relative.
	MinChange float64
	// MaxPoints: only a series' newest MaxPoints points are searched (the
	// search costs O(n²) per permutation; older changes are history).
	MaxPoints int
	// Rules give each metric's better direction (the gate's table).
	Rules baseline.Rules
}

// DefaultOptions are what `hal9-lab history check` uses.
func DefaultOptions() Options {
	return Options{Config: DefaultConfig(), Window: 5, MinChange: 0.02, MaxPoints: 120, Rules: baseline.DefaultRules()}
}

// ChangePoint is one change of one series.
type ChangePoint struct {
	SeriesID
	// Index is the first point after the change, counted from 0 along the
	// series.
	Index          int       `json:"index"`
	Time           time.Time `json:"time"`
	Commit         string    `json:"commit"`
	PreviousCommit string    `json:"previous_commit"` // the last point before: the commits between are suspects
	Before         float64   `json:"before"`          // median of the segment before
	After          float64   `json:"after"`           // median of the segment after
	Change         float64   `json:"change"`          // (after − before) / |before|
	P              float64   `json:"p"`
	Direction      string    `json:"direction"`
	// InWindow: among the series' last Window points; a regression there
	// fails the check.
	InWindow bool `json:"in_window"`
}

// Result is a check of every series.
type Result struct {
	Series       []Series      `json:"-"`
	ChangePoints []ChangePoint `json:"change_points"`
	Judged       int           `json:"judged"`     // series checked
	Shown        int           `json:"shown"`      // series too short or with moving references
	Window       int           `json:"window"`     // the options'
	Ignored      int           `json:"ignored"`    // significant steps under MinChange
	BadNights    int           `json:"bad_nights"` // nights left out of the search (despike)
}

// Regressions are the change points that fail the check.
func (r Result) Regressions() []ChangePoint {
	var out []ChangePoint
	for _, c := range r.ChangePoints {
		if c.InWindow && c.Direction == Regression {
			out = append(out, c)
		}
	}
	return out
}

// CheckProfile reads a profile's history ("": every profile) and checks
// it: what a gate calls to say whether the history has a change point in
// its window (Result.Regressions).
func CheckProfile(ctx context.Context, s *Store, profile string, o Options) (Result, error) {
	runs, err := s.Runs(ctx, profile)
	if err != nil {
		return Result{}, err
	}
	return Check(BuildSeries(runs, 2*o.withDefaults().MinSize), o), nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	o.Config = o.Config.withDefaults()
	if o.Window < 1 {
		o.Window = d.Window
	}
	if o.MinChange < 0 || math.IsNaN(o.MinChange) {
		o.MinChange = d.MinChange
	}
	if o.MaxPoints < 2*o.MinSize {
		o.MaxPoints = d.MaxPoints
	}
	if o.Rules == nil {
		o.Rules = d.Rules
	}
	return o
}

// Check finds the change points of every judged series, bad nights set
// aside (despike). Each series is searched with EDivisive (the history's
// changes; those inside the window are left to the next step), then its
// window with WindowSplit, from the last change point before the window, in
// the metric's worse direction. A window's regression fails the check only
// if it survives Benjamini–Hochberg at WindowSignificance over all the
// series' window tests, so more series do not mean more false alarms; the
// window's permutations grow with the number of series, so that the
// smallest p can pass Benjamini–Hochberg's smallest bar (q / series).
// Improvements are reported once they are older than the window.
func Check(series []Series, o Options) Result {
	o = o.withDefaults()
	res := Result{Series: series, Window: o.Window}
	judged := 0
	for _, s := range series {
		if s.Judged {
			judged++
		}
	}
	o.WindowPermutations = max(o.WindowPermutations, int(math.Ceil(2*float64(judged)/o.WindowSignificance)))
	type windowCand struct {
		cp ChangePoint
		p  float64
	}
	var cands []windowCand
	tests := 0
	for _, s := range series {
		if !s.Judged {
			res.Shown++
			continue
		}
		res.Judged++
		off := max(0, len(s.Points)-o.MaxPoints)
		all := s.Points[off:]
		raw := make([]float64, len(all))
		for i, p := range all {
			raw[i] = p.Value
		}
		// The search runs on the nights that are not bad nights; pts are
		// those nights, at[i] their index along the series.
		kept := despike(raw)
		res.BadNights += len(raw) - len(kept)
		pts, x, at := make([]Point, len(kept)), make([]float64, len(kept)), make([]int, len(kept))
		for i, k := range kept {
			pts[i], x[i], at[i] = all[k], raw[k], off+k
		}
		// The window is the series' last Window nights, bad ones left out.
		n, w := len(x), 0
		for w < n && at[n-1-w] >= len(s.Points)-o.Window {
			w++
		}
		bounds, pAt := []int{0}, map[int]float64{}
		for _, sp := range EDivisive(x, o.Config) {
			if sp.Index < n-w { // the window is WindowSplit's
				bounds = append(bounds, sp.Index)
				pAt[sp.Index] = sp.P
			}
		}
		bounds = append(bounds, n)
		rule := o.Rules.ForKey(baseline.Key{Leg: s.Leg, Scenario: s.Scenario, Op: s.Op, Metric: s.Metric})
		for i := 1; i+1 < len(bounds); i++ {
			cp, ok := changePoint(s, pts, at, bounds[i-1], bounds[i], bounds[i+1], rule, o)
			if ok {
				cp.P = pAt[bounds[i]]
				res.ChangePoints = append(res.ChangePoints, cp)
			} else {
				res.Ignored++
			}
		}
		start := bounds[len(bounds)-2]
		tests++
		// The window is tested in the worse direction only: an improvement
		// there is reported once it is older than the window.
		sign := 1.0
		if rule.Direction == baseline.HigherIsBetter {
			sign = -1
		}
		if sp, ok := WindowSplit(x[start:], w, sign, o.Config); ok && sp.P < o.WindowSignificance {
			cp, ok := changePoint(s, pts, at, start, start+sp.Index, n, rule, o)
			if !ok || cp.Direction != Regression {
				res.Ignored++
			} else {
				cp.P, cp.InWindow = sp.P, true
				cands = append(cands, windowCand{cp, sp.P})
			}
		}
	}
	slices.SortStableFunc(cands, func(a, b windowCand) int { return cmpFloat(a.p, b.p) })
	ps := make([]float64, len(cands))
	for i, c := range cands {
		ps[i] = c.p
	}
	for _, wc := range cands[:benjaminiHochberg(ps, o.WindowSignificance, tests)] {
		res.ChangePoints = append(res.ChangePoints, wc.cp)
	}
	slices.SortStableFunc(res.ChangePoints, func(a, b ChangePoint) int {
		if c := compareIDs(a.SeriesID, b.SeriesID); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	return res
}

// benjaminiHochberg returns how many of the sorted p-values ps (the
// smallest of m tests) are kept at false discovery rate q: the largest k
// with p_(k) ≤ k·q/m.
func benjaminiHochberg(ps []float64, q float64, m int) int {
	keep := 0
	for j, p := range ps {
		if p <= float64(j+1)*q/float64(max(m, 1)) {
			keep = j + 1
		}
	}
	return keep
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// changePoint describes the change at b between segments [a,b) and
// [b,c) of pts (at: their indices along the series): medians either side,
// the relative step, its direction; ok is false under the minimum change.
func changePoint(s Series, pts []Point, at []int, a, b, c int, rule baseline.Rule, o Options) (ChangePoint, bool) {
	vals := func(i, j int) []float64 {
		out := make([]float64, 0, j-i)
		for _, p := range pts[i:j] {
			out = append(out, p.Value)
		}
		return out
	}
	before, after := median(vals(a, b)), median(vals(b, c))
	cp := ChangePoint{SeriesID: s.SeriesID, Index: at[b], Time: pts[b].Time, Commit: pts[b].Commit,
		PreviousCommit: pts[b-1].Commit, Before: before, After: after, Change: relChange(before, after)}
	worse := after > before
	if rule.Direction == baseline.HigherIsBetter {
		worse = after < before
	}
	cp.Direction = Improvement
	if worse {
		cp.Direction = Regression
	}
	step := math.Abs(after - before)
	if rule.Absolute && s.Kind == Absolute {
		return cp, step > 0 && step >= rule.MinEffect/2
	}
	return cp, step > 0 && step >= o.MinChange*math.Abs(before)
}

// relChange is (after − before) / |before|; from 0 it is ±1e9 (JSON has
// no infinity).
func relChange(before, after float64) float64 {
	switch {
	case before == after:
		return 0
	case before == 0:
		return math.Copysign(1e9, after)
	}
	return (after - before) / math.Abs(before)
}

// WriteExport writes the check's change points as JSON
// ({"change_points":[…]}) for other tools.
func WriteExport(path string, r Result) error {
	cps := r.ChangePoints
	if cps == nil {
		cps = []ChangePoint{}
	}
	data, err := json.MarshalIndent(struct {
		ChangePoints []ChangePoint `json:"change_points"`
		Judged       int           `json:"judged_series"`
		Window       int           `json:"window"`
	}{cps, r.Judged, r.Window}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode change points: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
