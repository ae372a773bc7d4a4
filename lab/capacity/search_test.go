package capacity

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// simTarget is a simulated server's answer curve, not a server: the SLO
// holds while the rate is at most c (times a per-step noise factor), the
// engine cannot go past engineMax (0: no limit), and probes, the ramp's
// short steps, are full from fullFrom it/s up (0: always), as StepRule
// makes them when the floor holds a full step's samples. lies flips the
// verdict of the first n steps at a rate (rounded to it/s): a stall of the
// machine, or too few samples in a short probe; stalls marks the first n
// failures at a rate as explained by the lab's stall (Step.Stalled). What is tested here is the
// search's state machine; lab/load's engine against a queue of known
// capacity is in loadstep_test.go.
type simTarget struct {
	c, engineMax, noise float64
	fullFrom            float64
	lies, stalls        map[int]int
	late                float64 // every step's LabStalledShare
	rng                 *rand.Rand
	calls               int
}

func (t *simTarget) Step(_ context.Context, rate float64, probe bool) (Step, error) {
	t.calls++
	c := t.c
	if t.noise > 0 {
		c *= 1 + t.noise*(2*t.rng.Float64()-1)
	}
	ok := rate <= c
	if r := int(math.Round(rate)); t.lies[r] > 0 {
		ok = !ok
		t.lies[r]--
	}
	s := Step{AchievedRate: rate, RequestRate: 1.5 * rate, P99: 50, MeanMS: 10, SLOOK: ok, Full: !probe || rate >= t.fullFrom, LabStalledShare: t.late}
	if !s.SLOOK {
		s.P99 = 50 + 100*math.Abs(rate-c)
		if r := int(math.Round(rate)); t.stalls[r] > 0 {
			s.Stalled = true
			t.stalls[r]--
		}
	}
	if t.engineMax > 0 && rate > t.engineMax {
		s.Engine = "dropped 5% of planned iterations"
		s.AchievedRate = t.engineMax
	}
	s.SLO = []Threshold{{Metric: "http_req_duration", Expr: "p(99)<500", OK: s.SLOOK, Observed: s.P99}}
	s.Concurrency = s.RequestRate * s.MeanMS / 1000
	return s, nil
}

func TestSearch(t *testing.T) {
	strict := Config{StartRate: 10, NoRetry: true}
	cases := []struct {
		name    string
		target  simTarget
		cfg     Config
		found   bool
		limited string
		lo, hi  float64 // knee within [lo, hi]
		exit    int
		phases  string // the steps' phases, r b c for ramp, bisect, confirm ("": not checked)
	}{
		// Every failure is confirmed by a second full step.
		{"monotone", simTarget{c: 437}, Config{StartRate: 10}, true, LimitServer, 437 / 1.05, 437, 0, "rrrrrrrcbcbbb"},
		{"monotone, no retry", simTarget{c: 437}, strict, true, LimitServer, 437 / 1.05, 437, 0, "rrrrrrrbbbb"},
		{"monotone, the lab late 5 % of the time", simTarget{c: 437, late: 0.05}, strict, true, LimitServer, 437 / 1.05, 437, 0, "rrrrrrrbbbb"},
		{"noisy ±3%", simTarget{c: 437, noise: 0.03}, Config{StartRate: 10}, true, LimitServer, 437 * 0.97 / 1.05, 437 * 1.03, 0, ""},
		{"failing at the lowest rate", simTarget{c: 5}, Config{StartRate: 10}, false, LimitServer, 0, 0, 99, "rc"},
		{"failing at the lowest rate, no retry", simTarget{c: 5}, strict, false, LimitServer, 0, 0, 99, "r"},
		// A short probe's failure is confirmed even without retries.
		{"failing at the lowest rate, a short probe", simTarget{c: 5, fullFrom: 100}, strict, false, LimitServer, 0, 0, 99, "rc"},
		{"engine-limited", simTarget{c: 1000, engineMax: 300}, Config{StartRate: 10}, true, LimitEngine, 300 / 1.05, 300, 0, ""},
		{"engine fails at the start", simTarget{c: 1000, engineMax: 5}, Config{StartRate: 10}, false, LimitEngine, 0, 0, 1, "rc"},
		{"no failure up to the ceiling", simTarget{c: 1e9}, Config{StartRate: 10, Ceiling: 700}, true, LimitCeiling, 700, 700, 0, "rrrrrrrr"},
		{"ceiling reached by a short probe", simTarget{c: 1e9, fullFrom: 1000}, Config{StartRate: 10, Ceiling: 700}, true, LimitCeiling, 700, 700, 0, "rrrrrrrrc"},
		{"tight precision", simTarget{c: 250}, Config{StartRate: 16, Precision: 0.01}, true, LimitServer, 250 / 1.01, 250, 0, ""},
		// Short probes below 100 it/s: the bracket's ends are full steps,
		// nothing more to confirm.
		{"short probes at low rates", simTarget{c: 437, fullFrom: 100}, strict, true, LimitServer, 437 / 1.05, 437, 0, "rrrrrrrbbbb"},
		// The probe at 40 fails by chance: its confirmation passes and the
		// ramp goes on.
		{"a short probe fails by chance", simTarget{c: 437, fullFrom: 100, lies: map[int]int{40: 1}}, strict,
			true, LimitServer, 437 / 1.05, 437, 0, "rrrcrrrrbbbb"},
		// A stall fails the full step at 381 it/s (0.87 c): without the
		// retry the knee is wrong by 13 %, with it right.
		{"a stall in a full step, no retry", simTarget{c: 437, lies: map[int]int{381: 1}}, strict, true, LimitServer, 320, 381, 0, ""},
		{"a stall in a full step", simTarget{c: 437, lies: map[int]int{381: 1}}, Config{StartRate: 10}, true, LimitServer, 437 / 1.05, 437, 0, "rrrrrrrcbcbcbb"},
		// Two stalls in a row at a rate are believed.
		{"two stalls", simTarget{c: 437, lies: map[int]int{381: 2}}, Config{StartRate: 10}, true, LimitServer, 320, 381, 0, ""},
		// Unless the lab's stall explains them: two excused failures at 40,
		// then a pass.
		{"two failures the lab's stalls explain", simTarget{c: 437, lies: map[int]int{40: 2}, stalls: map[int]int{40: 2}}, Config{StartRate: 10},
			true, LimitServer, 437 / 1.05, 437, 0, "rrrccrrrrcbcbbb"},
		// Excuses run out: the third and fourth failures at 40 count.
		{"four failures the lab's stalls explain", simTarget{c: 437, lies: map[int]int{40: 4}, stalls: map[int]int{40: 4}}, Config{StartRate: 10},
			true, LimitServer, 20, 40, 0, "rrrcccbbbb"},
		// The probe at 80 passes though the capacity is 70 and is not
		// full: the bisection's steps fail down to it, its confirmation
		// fails, and the bracket falls back to [40, 80].
		{"a short probe passes above the knee", simTarget{c: 70, fullFrom: 100, lies: map[int]int{80: 1}}, strict,
			true, LimitServer, 70 / 1.05, 70, 0, "rrrrrbbbbcbbbb"},
		// The same lie in a full probe is believed: the knee is wrong by
		// as much as the lie (what full steps are for).
		{"a full probe's lie stands", simTarget{c: 70, lies: map[int]int{80: 1}}, strict, true, LimitServer, 80, 80, 0, "rrrrrbbbb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg := c.target
			tg.rng = rand.New(rand.NewPCG(1, 2))
			var out bytes.Buffer
			c.cfg.Progress = &out
			res, err := Search(context.Background(), &tg, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			k := res.Knee
			if k.Found != c.found || k.LimitedBy != c.limited {
				t.Fatalf("knee %+v: want found %v, limited by %s", k, c.found, c.limited)
			}
			if c.found && (k.Rate < c.lo-1e-9 || k.Rate > c.hi+1e-9) {
				t.Errorf("knee %.2f it/s, want in [%.2f, %.2f]", k.Rate, c.lo, c.hi)
			}
			if got := res.ExitCode(); got != c.exit {
				t.Errorf("exit %d, want %d", got, c.exit)
			}
			if len(res.Steps) != tg.calls || len(res.Steps) > 30 {
				t.Errorf("%d steps recorded for %d calls", len(res.Steps), tg.calls)
			}
			var phases strings.Builder
			for _, s := range res.Steps {
				phases.WriteByte(s.Phase[0])
			}
			if c.phases != "" && phases.String() != c.phases {
				t.Errorf("phases %s, want %s\n%s", phases.String(), c.phases, out.String())
			}
			if n := strings.Count(out.String(), "capacity step"); n != len(res.Steps) {
				t.Errorf("%d progress lines for %d steps:\n%s", n, len(res.Steps), out.String())
			}
			if c.found && c.limited != LimitCeiling && k.Bound/k.Rate-1 > res.Settings.Precision+1e-9 {
				t.Errorf("knee %.2f and bound %.2f are further apart than the precision %.2f", k.Rate, k.Bound, res.Settings.Precision)
			}
			if noted := slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "the lab process was late 5.0%") }); noted != (tg.late > 0) {
				t.Errorf("notes %q: want one on the lab's stalls iff it was late", res.Notes)
			}
			if k.Found && (len(k.SLO) != 1 || k.SLO[0] != "http_req_duration:p(99)<500") {
				t.Errorf("knee SLO %v", k.SLO)
			}
		})
	}
}

// A passing step with an engine problem is the engine's, never the
// server's; a broken SLO is the server's even when the engine struggled.
func TestJudge(t *testing.T) {
	for _, c := range []struct {
		slo     bool
		engine  string
		pass    bool
		limited string
	}{
		{true, "", true, ""},
		{true, "VUs exhausted", false, LimitEngine},
		{false, "", false, LimitServer},
		{false, "dropped 3%", false, LimitServer},
	} {
		s := Step{SLOOK: c.slo, Engine: c.engine}
		s.judge()
		if s.Pass != c.pass || s.LimitedBy != c.limited {
			t.Errorf("slo %v engine %q: pass %v limited %q, want %v %q", c.slo, c.engine, s.Pass, s.LimitedBy, c.pass, c.limited)
		}
	}
}

func TestSearchConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{StartRate: -1}, "start rate"},
		{Config{Growth: 1}, "growth"},
		{Config{StartRate: 100, Ceiling: 50}, "ceiling"},
		{Config{Precision: 1.5}, "precision"},
		{Config{MaxSteps: 1}, "max steps"},
	} {
		_, err := Search(context.Background(), &simTarget{c: 100}, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one about %q", c.cfg, err, c.want)
		}
	}
}

// A cancelled search returns what it measured, the knee as a lower bound.
func TestSearchCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	st := StepperFunc(func(ctx context.Context, rate float64, _ bool) (Step, error) {
		n++
		if n == 3 {
			cancel()
			return Step{}, ctx.Err()
		}
		return Step{SLOOK: true, RequestRate: rate, MeanMS: 5, Concurrency: rate * 0.005}, nil
	})
	res, err := Search(ctx, st, Config{StartRate: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 2 || !res.Knee.Found || res.Knee.Rate != 20 {
		t.Fatalf("steps %d, knee %+v", len(res.Steps), res.Knee)
	}
}

func TestFitUSL(t *testing.T) {
	want := USL{Sigma: 0.05, Kappa: 0.002, Lambda: 120}
	rng := rand.New(rand.NewPCG(3, 4))
	var n, x []float64
	for _, c := range []float64{1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64} {
		n = append(n, c)
		x = append(x, want.X(c)*(1+0.01*(2*rng.Float64()-1)))
	}
	got, err := FitUSL(n, x)
	if err != nil {
		t.Fatal(err)
	}
	rel := func(a, b float64) float64 { return math.Abs(a-b) / b }
	if rel(got.Sigma, want.Sigma) > 0.15 || rel(got.Kappa, want.Kappa) > 0.15 || rel(got.Lambda, want.Lambda) > 0.05 {
		t.Errorf("fit σ=%.4f κ=%.5f λ=%.2f, want σ=%.4f κ=%.5f λ=%.2f", got.Sigma, got.Kappa, got.Lambda, want.Sigma, want.Kappa, want.Lambda)
	}
	wantPeak := math.Sqrt((1 - want.Sigma) / want.Kappa)
	if rel(got.PeakN, wantPeak) > 0.1 {
		t.Errorf("peak concurrency %.1f, want %.1f", got.PeakN, wantPeak)
	}
	if got.R2 < 0.99 || got.Points != len(n) {
		t.Errorf("R² %.4f over %d points", got.R2, got.Points)
	}
	// Linear scaling: σ and κ near 0, no peak.
	var ln, lx []float64
	for c := 1.0; c <= 20; c++ {
		ln, lx = append(ln, c), append(lx, 50*c)
	}
	lin, err := FitUSL(ln, lx)
	if err != nil {
		t.Fatal(err)
	}
	if lin.Sigma > 1e-3 || lin.Kappa > 1e-5 || rel(lin.Lambda, 50) > 0.01 {
		t.Errorf("linear data: σ=%g κ=%g λ=%g", lin.Sigma, lin.Kappa, lin.Lambda)
	}
	if _, err := FitUSL([]float64{1, 2}, []float64{1, 2}); err == nil {
		t.Error("two points: want an error")
	}
}
