package history

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// noise returns n normal values with mean mu and sd sigma from a fixed seed.
func noise(seed uint64, n int, mu, sigma float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]float64, n)
	for i := range out {
		out[i] = mu + sigma*r.NormFloat64()
	}
	return out
}

func concat(parts ...[]float64) []float64 {
	var out []float64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestBestSplitByHand checks the statistic on a series small enough to
// work out: X = {0,0}, Y = {1,1}: 2/(2·2)·4 − 0 − 0 = 2, times 2·2/(2+2).
func TestBestSplitByHand(t *testing.T) {
	c := bestSplit([]float64{0, 0, 1, 1}, Config{MinSize: 2, Alpha: 1})
	if c.tau != 2 || math.Abs(c.q-2) > 1e-12 {
		t.Fatalf("bestSplit = %+v, want tau 2, q 2", c)
	}
	// X = {0,1}, Y = {0,1} at the only other split (kappa 4) is worth
	// 2/4·2 − 1 − 1 = −1, so τ = 2 must win over τ = 2's neighbours with
	// MinSize 1 … checked through the direct formula:
	x, y := []float64{0, 1}, []float64{0, 1}
	if q := directQ(x, y, 1); math.Abs(q-(-1)) > 1e-12 {
		t.Fatalf("directQ = %v, want -1", q)
	}
}

// directQ is Q̂ written as the paper does, without prefix sums.
func directQ(x, y []float64, alpha float64) float64 {
	m, n := float64(len(x)), float64(len(y))
	var b, wx, wy float64
	for _, a := range x {
		for _, c := range y {
			b += math.Pow(math.Abs(a-c), alpha)
		}
	}
	for i := range x {
		for k := i + 1; k < len(x); k++ {
			wx += math.Pow(math.Abs(x[i]-x[k]), alpha)
		}
	}
	for j := range y {
		for k := j + 1; k < len(y); k++ {
			wy += math.Pow(math.Abs(y[j]-y[k]), alpha)
		}
	}
	e := 2/(m*n)*b - wx/(m*(m-1)/2) - wy/(n*(n-1)/2)
	return m * n / (m + n) * e
}

// TestBestSplitMatchesDirect compares the prefix-sum search with the
// direct formula over every τ and κ of random series.
func TestBestSplitMatchesDirect(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		x := noise(seed, 17, 0, 1)
		for _, alpha := range []float64{0.5, 1, 2} {
			want := cand{tau: -1}
			for tau := 3; tau <= len(x)-3; tau++ {
				for kappa := tau + 3; kappa <= len(x); kappa++ {
					if q := directQ(x[:tau], x[tau:kappa], alpha); want.tau < 0 || q > want.q {
						want = cand{tau, q}
					}
				}
			}
			got := bestSplit(x, Config{MinSize: 3, Alpha: alpha})
			if got.tau != want.tau || math.Abs(got.q-want.q) > 1e-9*math.Max(1, math.Abs(want.q)) {
				t.Fatalf("seed %d α %v: bestSplit = %+v, direct = %+v", seed, alpha, got, want)
			}
		}
	}
}

// quick is a level and a number of permutations the known answers pass
// at, and cheap enough for -race.
var quick = Config{MinSize: 3, Alpha: 1, Permutations: 199, Significance: 0.01}

func TestEDivisiveKnownAnswers(t *testing.T) {
	cases := []struct {
		name  string
		x     []float64
		want  []int // change point indices
		slack int   // how far from want a point may be
	}{
		{"one step", concat(noise(1, 20, 0, 1), noise(2, 20, 5, 1)), []int{20}, 0},
		{"up then down", concat(noise(3, 15, 0, 1), noise(4, 15, 6, 1), noise(5, 15, 0, 1)), []int{15, 30}, 0},
		{"three levels", concat(noise(6, 12, 10, 0.5), noise(7, 12, 13, 0.5), noise(8, 12, 16, 0.5)), []int{12, 24}, 0},
		{"a change of spread, not of mean", concat(noise(9, 60, 0, 0.2), noise(10, 60, 0, 4)), []int{60}, 1},
		{"constant", concat(make([]float64, 30)), nil, 0},
		{"noise alone", noise(11, 60, 100, 3), nil, 0},
		{"too short to split", []float64{1, 1, 9, 9, 9}, nil, 0},
		{"one spike is not a segment", concat(noise(12, 20, 100, 1), []float64{160}, noise(13, 20, 100, 1)), nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := EDivisive(c.x, quick)
			if len(got) != len(c.want) {
				t.Fatalf("change points %+v, want at %v", got, c.want)
			}
			for i, s := range got {
				if s.Index < c.want[i]-c.slack || s.Index > c.want[i]+c.slack {
					t.Errorf("change point %d at %d, want %d", i, s.Index, c.want[i])
				}
				if s.P >= quick.Significance || s.P <= 0 {
					t.Errorf("change point %d: p %v", i, s.P)
				}
			}
		})
	}
}

// TestEDivisiveMinSize: no segment is ever shorter than MinSize, whatever
// the series (steps of every length, spikes).
func TestEDivisiveMinSize(t *testing.T) {
	for seed := uint64(0); seed < 15; seed++ {
		r := rand.New(rand.NewPCG(seed, 3))
		x := noise(seed+100, 30+r.IntN(30), 0, 1)
		for i := r.IntN(len(x)); i < len(x) && i%7 != 0; i++ {
			x[i] += 8 // a step of a few points, sometimes at the end
		}
		x[r.IntN(len(x))] += 40
		for _, m := range []int{2, 3, 5} {
			prev := 0
			for _, s := range EDivisive(x, Config{MinSize: m, Permutations: 199, Significance: 0.05}) { // the property holds at any level
				if s.Index-prev < m {
					t.Fatalf("seed %d MinSize %d: segment [%d,%d) shorter than MinSize", seed, m, prev, s.Index)
				}
				prev = s.Index
			}
			if len(x)-prev < m && prev > 0 {
				t.Fatalf("seed %d MinSize %d: last segment [%d,%d) shorter than MinSize", seed, m, prev, len(x))
			}
		}
	}
}

// TestEDivisiveRepeatable: the permutations are seeded from the data, so
// the same series gives the same p; another seed gives another draw.
func TestEDivisiveRepeatable(t *testing.T) {
	x := concat(noise(30, 25, 0, 1), noise(31, 8, 3, 1))
	a, b := EDivisive(x, DefaultConfig()), EDivisive(append([]float64(nil), x...), DefaultConfig())
	if len(a) == 0 {
		t.Fatal("no change point found in a 3 σ step")
	}
	if len(a) != len(b) || a[0] != b[0] {
		t.Fatalf("two checks of one series differ: %+v vs %+v", a, b)
	}
	if dataSeed(x) == dataSeed(append(x[:len(x)-1:len(x)-1], x[len(x)-1]+1e-9)) {
		t.Error("the seed does not depend on the data")
	}
}

func TestWindowSplit(t *testing.T) {
	for _, alpha := range []float64{2, 1} { // the means' O(1) form, and the general one
		t.Run(fmt.Sprintf("alpha %v", alpha), func(t *testing.T) { testWindowSplit(t, alpha) })
	}
}

func testWindowSplit(t *testing.T, alpha float64) {
	cfg := DefaultConfig()
	cfg.WindowAlpha = alpha
	cfg.WindowPermutations = 999 // enough to tell p = 0.001 from 0.01, and quick
	up := concat(noise(40, 30, 100, 1), noise(41, 4, 106, 1))
	sp, ok := WindowSplit(up, 5, +1, cfg)
	if !ok || sp.Index != 30 || sp.P >= cfg.WindowSignificance {
		t.Errorf("a 6 σ step up 4 nights before the end: %+v, %v; want at 30, p < %v", sp, ok, cfg.WindowSignificance)
	}
	if sp.P != 1.0/float64(cfg.WindowPermutations+1) {
		t.Errorf("p = %v: no permutation should reach a 6 σ step", sp.P)
	}
	// One-sided: the same step is no change the other way.
	if sp, ok := WindowSplit(up, 5, -1, cfg); ok && sp.P < cfg.WindowSignificance {
		t.Errorf("a step up found looking down: %+v", sp)
	}
	// τ is only searched in the window: x must be one segment (Check
	// splits the history first), or an older step shows at the window's
	// first night.
	old := concat(noise(42, 30, 100, 1), noise(43, 10, 106, 1))
	if sp, ok := WindowSplit(old, 5, +1, cfg); !ok || sp.Index < 35 || sp.Index > 37 {
		t.Errorf("τ outside the window [35, 37]: %+v", sp)
	}
	if sp, ok := WindowSplit(old[30:], 5, +1, cfg); ok && sp.P < cfg.WindowSignificance {
		t.Errorf("the segment after the step has no change: %+v", sp)
	}
	if _, ok := WindowSplit(up[:5], 5, +1, cfg); ok {
		t.Error("5 points cannot hold two segments of 3")
	}
	flat := noise(44, 40, 100, 1)
	if sp, ok := WindowSplit(flat, 5, +1, cfg); ok && sp.P < cfg.WindowSignificance {
		t.Errorf("noise alone: %+v", sp)
	}
	again, _ := WindowSplit(slices.Clone(up), 5, +1, cfg)
	if again != sp {
		t.Errorf("the same series gave %+v then %+v", sp, again)
	}
}

// TestMeansQ: the O(1) form for α = 2 equals the paper's sums.
func TestMeansQ(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		x := noise(seed, 23, 300, 9)
		c := x[0]
		sums, squares := make([]float64, len(x)+1), make([]float64, len(x)+1)
		for i, v := range x {
			sums[i+1], squares[i+1] = sums[i]+(v-c), squares[i]+(v-c)*(v-c)
		}
		for tau := 2; tau <= len(x)-2; tau++ {
			want := directQ(x[:tau], x[tau:], 2)
			if got := meansQ(sums, squares, tau, len(x)); math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
				t.Fatalf("seed %d tau %d: meansQ %v, direct %v", seed, tau, got, want)
			}
		}
	}
}
