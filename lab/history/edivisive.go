package history

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
)

// Config holds E-divisive's parameters (DefaultConfig: the ones the
// trials measured; docs/lab.md says why).
type Config struct {
	// MinSize is the fewest points on each side of a change point (≥ 2):
	// a segment of one bad night cannot be split off, and a change in the
	// last MinSize-1 points is not yet visible.
	MinSize int
	// Alpha is the exponent of the distance |x−y|^α, in (0, 2]; 1 is
	// Matteson & James's choice (α = 2 would see only means).
	Alpha float64
	// Permutations is R, the permutation test's draws for the history's
	// change points; the smallest p it can give is 1/(R+1).
	Permutations int
	// WindowPermutations is R of the window's test (WindowSplit), larger:
	// its p-values are compared across series (Benjamini–Hochberg), whose
	// thresholds go down to WindowSignificance / (number of series).
	WindowPermutations int
	// Significance: a change point of the history is accepted when
	// p < Significance.
	Significance float64
	// WindowSignificance is the window's level (WindowSplit): the
	// false-discovery rate of the Benjamini–Hochberg step over all series
	// of a check, and a single series' level.
	WindowSignificance float64
	// WindowAlpha is the exponent of WindowSplit's distance: 2 compares
	// means only, the most powerful for a step of the level once bad nights
	// are set aside (despike).
	WindowAlpha float64
	// Seed of the permutations; 0 seeds them from the data, so the same
	// history gives the same answer.
	Seed uint64
}

// DefaultConfig is what `hal9-lab history check` uses.
func DefaultConfig() Config {
	return Config{MinSize: 3, Alpha: 1, Permutations: 999, Significance: 0.002,
		WindowAlpha: 2, WindowPermutations: 9999, WindowSignificance: 0.008}
}

// Split is one change point.
type Split struct {
	Index int     // the first point after the change (0-based)
	P     float64 // the permutation test's p when it was accepted
	Q     float64 // the divergence statistic Q̂ at the split
}

// EDivisive finds change points in the distribution of x with E-divisive
// (Matteson & James 2014, "A nonparametric approach for multiple change
// point analysis of multivariate data", JASA 109(505)): hierarchical
// bisection that splits the segment whose best split has the largest
// divergence
//
//	Q̂(X, Y) = mn/(m+n) · ( 2/(mn) Σᵢⱼ|Xᵢ−Yⱼ|^α − C(m,2)⁻¹ Σ_{i<k}|Xᵢ−Xₖ|^α − C(n,2)⁻¹ Σ_{j<k}|Yⱼ−Yₖ|^α )
//
// over X = the segment's points before τ and Y = its points from τ up to
// κ (both searched, each side ≥ MinSize points), and keeps the split while
// a permutation test says it is significant: the points are shuffled
// within each current segment R times, the largest Q̂ recomputed, and
// p = (1 + #{Q̂ᵣ ≥ Q̂}) / (R + 1). The result is sorted by index.
func EDivisive(x []float64, cfg Config) []Split {
	cfg = cfg.withDefaults()
	n := len(x)
	if n < 2*cfg.MinSize {
		return nil
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = dataSeed(x)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var splits []Split
	bounds := []int{0, n}
	best := map[int]cand{} // segment start → its best split on the data
	for {
		top, topStart := cand{tau: -1}, -1
		for i := 0; i+1 < len(bounds); i++ {
			a, b := bounds[i], bounds[i+1]
			c, ok := best[a]
			if !ok {
				c = bestSplit(x[a:b], cfg)
				best[a] = c
			}
			if c.tau >= 0 && (top.tau < 0 || c.q > top.q) {
				top, topStart = c, a
			}
		}
		if top.tau < 0 {
			return splits
		}
		p := permutationP(x, bounds, top.q, cfg, rng)
		if p >= cfg.Significance {
			return splits
		}
		at := topStart + top.tau
		splits = append(splits, Split{Index: at, P: p, Q: top.q})
		delete(best, topStart)
		bounds = append(bounds, at)
		slices.Sort(bounds)
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MinSize < 2 {
		c.MinSize = d.MinSize
	}
	if c.Alpha <= 0 || c.Alpha > 2 {
		c.Alpha = d.Alpha
	}
	if c.Permutations < 1 {
		c.Permutations = d.Permutations
	}
	if c.WindowPermutations < 1 {
		c.WindowPermutations = d.WindowPermutations
	}
	if c.Significance <= 0 || c.Significance >= 1 {
		c.Significance = d.Significance
	}
	if c.WindowSignificance <= 0 || c.WindowSignificance >= 1 {
		c.WindowSignificance = d.WindowSignificance
	}
	if c.WindowAlpha <= 0 || c.WindowAlpha > 2 {
		c.WindowAlpha = d.WindowAlpha
	}
	return c
}

// cand is a segment's best split: tau points before it (-1: none).
type cand struct {
	tau int
	q   float64
}

// energy holds the 2-D prefix sums of a segment's distance matrix, so the
// sum over any block of it costs O(1): P[i*w+j] = Σ_{r<i, c<j} |y_r − y_c|^α.
type energy struct {
	p []float64
	w int
}

func newEnergy(y []float64, alpha float64, buf []float64) energy {
	w := len(y) + 1
	if cap(buf) < w*w {
		buf = make([]float64, w*w)
	}
	p := buf[:w*w]
	clear(p[:w])
	for i := 1; i < w; i++ {
		p[i*w] = 0
		row := 0.0
		for j := 1; j < w; j++ {
			row += dist(y[i-1], y[j-1], alpha)
			p[i*w+j] = p[(i-1)*w+j] + row
		}
	}
	return energy{p: p, w: w}
}

func (e energy) block(r0, r1, c0, c1 int) float64 {
	w := e.w
	return e.p[r1*w+c1] - e.p[r0*w+c1] - e.p[r1*w+c0] + e.p[r0*w+c0]
}

// q is Q̂ of X = [0, tau) against Y = [tau, kappa). The within sums are
// full blocks (each pair twice): C(m,2)⁻¹ Σ_{i<k} = block / (m(m−1)).
func (e energy) q(tau, kappa int) float64 {
	nx, ny := float64(tau), float64(kappa-tau)
	d := 2*e.block(0, tau, tau, kappa)/(nx*ny) - e.block(0, tau, 0, tau)/(nx*(nx-1)) - e.block(tau, kappa, tau, kappa)/(ny*(ny-1))
	return nx * ny / (nx + ny) * d
}

// bestSplit searches τ and κ over one segment y in O(len²) time.
func bestSplit(y []float64, cfg Config) cand {
	L, m := len(y), cfg.MinSize
	if L < 2*m {
		return cand{tau: -1}
	}
	e := newEnergy(y, cfg.Alpha, nil)
	best := cand{tau: -1}
	for tau := m; tau <= L-m; tau++ {
		for kappa := tau + m; kappa <= L; kappa++ {
			if q := e.q(tau, kappa); best.tau < 0 || q > best.q {
				best = cand{tau: tau, q: q}
			}
		}
	}
	return best
}

func dist(a, b, alpha float64) float64 {
	d := math.Abs(a - b)
	switch alpha {
	case 1:
		return d
	case 2:
		return d * d
	}
	return math.Pow(d, alpha)
}

// permutationP is the permutation test of the largest split qObs given
// the current segments: it stops early once p can no longer fall below
// the significance level (most series have no change: this keeps the
// check cheap).
func permutationP(x []float64, bounds []int, qObs float64, cfg Config, rng *rand.Rand) float64 {
	y := make([]float64, len(x))
	over := 0
	R := cfg.Permutations
	for r := 1; r <= R; r++ {
		copy(y, x)
		qMax := math.Inf(-1)
		for i := 0; i+1 < len(bounds); i++ {
			seg := y[bounds[i]:bounds[i+1]]
			rng.Shuffle(len(seg), func(a, b int) { seg[a], seg[b] = seg[b], seg[a] })
			if c := bestSplit(seg, cfg); c.tau >= 0 && c.q > qMax {
				qMax = c.q
			}
		}
		if qMax >= qObs {
			over++
			if p := float64(over+1) / float64(R+1); p >= cfg.Significance {
				return p
			}
		}
	}
	return float64(over+1) / float64(R+1)
}

// dataSeed hashes the series, so a check is repeatable.
func dataSeed(x []float64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, v := range x {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		h.Write(b[:])
	}
	return h.Sum64() | 1
}

// WindowSplit asks whether the newest points of a segment changed: it is
// E-divisive's next bisection of x (one segment: the points since the
// last change point) with τ searched only among the last w points, κ = the
// end, and one-sided: only splits after which the mean moved the way sign
// says (+1 up, −1 down) count; the distance's exponent is WindowAlpha. Its
// permutation test shuffles x with WindowPermutations draws, and stops
// early once p cannot fall below WindowSignificance (a larger p is then a
// lower bound). ok is false when no τ
// can be tested (x too short for MinSize on both sides).
func WindowSplit(x []float64, w int, sign float64, cfg Config) (s Split, ok bool) {
	cfg = cfg.withDefaults()
	n, m := len(x), cfg.MinSize
	lo := max(m, n-w)
	if n-m < lo {
		return Split{}, false
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = dataSeed(x)
	}
	if sign < 0 {
		seed = ^seed
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	sums, squares := make([]float64, n+1), make([]float64, n+1)
	var buf []float64
	scan := func(y []float64) (int, float64) {
		var e energy
		if cfg.WindowAlpha != 2 {
			e = newEnergy(y, cfg.WindowAlpha, buf)
			buf = e.p
		}
		c := y[0] // centred, so the sums of squares do not lose the spread
		for i, v := range y {
			sums[i+1], squares[i+1] = sums[i]+(v-c), squares[i]+(v-c)*(v-c)
		}
		bestTau, bestQ := -1, math.Inf(-1)
		for tau := lo; tau <= n-m; tau++ {
			moved := (sums[n]-sums[tau])/float64(n-tau) - sums[tau]/float64(tau)
			if moved*sign <= 0 {
				continue
			}
			q := 0.0
			if cfg.WindowAlpha == 2 {
				q = meansQ(sums, squares, tau, n)
			} else {
				q = e.q(tau, n)
			}
			if q > bestQ {
				bestTau, bestQ = tau, q
			}
		}
		return bestTau, bestQ
	}
	tau, qObs := scan(x)
	if tau < 0 {
		return Split{}, false
	}
	y := make([]float64, n)
	over, R := 0, cfg.WindowPermutations
	for r := 1; r <= R; r++ {
		copy(y, x)
		rng.Shuffle(n, func(a, b int) { y[a], y[b] = y[b], y[a] })
		if _, q := scan(y); q >= qObs {
			over++
			if p := float64(over+1) / float64(R+1); p >= cfg.WindowSignificance {
				return Split{Index: tau, P: p, Q: qObs}, true
			}
		}
	}
	return Split{Index: tau, P: float64(over+1) / float64(R+1), Q: qObs}, true
}

// meansQ is Q̂ of [0,tau) against [tau,n) for α = 2 in O(1) from prefix
// sums of the values and of their squares (squared distances expand:
// Σᵢⱼ(xᵢ−yⱼ)² = n_Y Σx² + n_X Σy² − 2 Σx Σy), so the window's
// permutations cost O(n) each instead of O(n²).
func meansQ(sums, squares []float64, tau, n int) float64 {
	nx, ny := float64(tau), float64(n-tau)
	sx, sy := sums[tau], sums[n]-sums[tau]
	qx, qy := squares[tau], squares[n]-squares[tau]
	between := ny*qx + nx*qy - 2*sx*sy
	withinX := 2*nx*qx - 2*sx*sx
	withinY := 2*ny*qy - 2*sy*sy
	d := 2*between/(nx*ny) - withinX/(nx*(nx-1)) - withinY/(ny*(ny-1))
	return nx * ny / (nx + ny) * d
}
