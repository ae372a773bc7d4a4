package capacity

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// USL is Gunther's Universal Scalability Law fitted to throughput X
// against concurrency N:
//
//	X(N) = λN / (1 + σ(N−1) + κN(N−1))
//
// λ is the throughput of one unit of concurrency without contention, σ
// the contention (the serial share: queueing for a shared resource), κ
// the coherency delay (crosstalk: every request paying for every other).
// With κ > 0 throughput peaks at N* = √((1−σ)/κ) and falls beyond it.
type USL struct {
	Sigma  float64 `json:"sigma"`
	Kappa  float64 `json:"kappa"`
	Lambda float64 `json:"lambda"`
	// PeakN is N*, when it lies within 10× the largest concurrency
	// measured (beyond, κ is too small to tell: 0); PeakX is X(N*), or
	// the ceiling λ/σ that X approaches when there is no peak.
	PeakN  float64 `json:"peak_concurrency"`
	PeakX  float64 `json:"peak_throughput"`
	R2     float64 `json:"r2"`
	Points int     `json:"points"`
}

// X is the fitted throughput at concurrency n.
func (u USL) X(n float64) float64 {
	return u.Lambda * n / (1 + u.Sigma*(n-1) + u.Kappa*n*(n-1))
}

// FitUSL fits the USL to (n[i], x[i]) by least squares on X, with gonum's
// Nelder-Mead over (√σ, √κ, ln λ) so that σ, κ ≥ 0 and λ > 0 without
// constraints; it starts from a few σ, κ guesses and keeps the best.
func FitUSL(n, x []float64) (USL, error) {
	if len(n) != len(x) {
		return USL{}, fmt.Errorf("usl fit: %d concurrency values for %d throughputs", len(n), len(x))
	}
	var pn, px []float64
	for i := range n {
		if n[i] > 0 && x[i] > 0 && !math.IsInf(n[i], 0) && !math.IsInf(x[i], 0) {
			pn, px = append(pn, n[i]), append(px, x[i])
		}
	}
	if len(pn) < 3 {
		return USL{}, fmt.Errorf("usl fit: %d usable points (concurrency and throughput > 0), need at least 3", len(pn))
	}
	// λ: the best throughput per unit of concurrency among the lightest
	// points is a fair start (there σ and κ barely act).
	lam := 0.0
	minN := math.Inf(1)
	for i := range pn {
		minN = math.Min(minN, pn[i])
	}
	for i := range pn {
		if pn[i] <= 2*minN {
			lam = math.Max(lam, px[i]/pn[i])
		}
	}
	sse := func(p []float64) float64 {
		u := USL{Sigma: p[0] * p[0], Kappa: p[1] * p[1], Lambda: math.Exp(p[2])}
		var s float64
		for i := range pn {
			d := u.X(pn[i]) - px[i]
			s += d * d
		}
		if math.IsNaN(s) {
			return math.Inf(1)
		}
		return s
	}
	best, bestF := []float64(nil), math.Inf(1)
	for _, sg := range []float64{0.01, 0.1, 0.5} {
		for _, kp := range []float64{1e-6, 1e-4, 1e-2} {
			p := optimize.Problem{Func: sse}
			init := []float64{math.Sqrt(sg), math.Sqrt(kp), math.Log(lam)}
			r, err := optimize.Minimize(p, init, &optimize.Settings{MajorIterations: 4000, FuncEvaluations: 20000}, &optimize.NelderMead{})
			if err != nil && r == nil {
				continue
			}
			if r.F < bestF {
				best, bestF = r.X, r.F
			}
		}
	}
	if best == nil {
		return USL{}, errors.New("usl fit: the optimiser found no solution")
	}
	u := USL{Sigma: best[0] * best[0], Kappa: best[1] * best[1], Lambda: math.Exp(best[2]), Points: len(pn)}
	var mean, sst float64
	for _, v := range px {
		mean += v
	}
	mean /= float64(len(px))
	for _, v := range px {
		sst += (v - mean) * (v - mean)
	}
	if sst > 0 {
		u.R2 = 1 - bestF/sst
	}
	maxN := 0.0
	for _, v := range pn {
		maxN = math.Max(maxN, v)
	}
	if u.Kappa > 0 && u.Sigma < 1 {
		if n := math.Sqrt((1 - u.Sigma) / u.Kappa); n <= 10*maxN {
			u.PeakN, u.PeakX = n, u.X(n)
		}
	}
	if u.PeakN == 0 && u.Sigma > 0 {
		u.PeakX = u.Lambda / u.Sigma
	}
	return u, nil
}
