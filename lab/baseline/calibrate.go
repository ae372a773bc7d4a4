package baseline

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// SpreadFactor is k in a series' calibrated minimum effect, max(the
// rule's, k × the baseline's own run-to-run range): a change must be
// larger than twice what the baseline's runs already differ by before it
// counts (docs/lab.md, "False alarms per gate", has the simulation that
// chose 2).
const SpreadFactor = 2.0

// Spread is the baseline's run-to-run range in the rule's terms: (max −
// min) / |median| for a relative rule, max − min for an absolute one. With
// 5 or more runs the one farthest from the median is left out first, so a
// single disturbed baseline run (a busy machine) does not widen every
// effect of its leg. 0 with fewer than 2 values or a zero median
// (relative).
func Spread(rule Rule, base []float64) float64 {
	if len(base) < 2 {
		return 0
	}
	s := append([]float64(nil), base...)
	sort.Float64s(s)
	med := median(s)
	if len(s) >= 5 {
		if med-s[0] > s[len(s)-1]-med {
			s = s[1:]
		} else {
			s = s[:len(s)-1]
		}
	}
	lo, hi := s[0], s[len(s)-1]
	if rule.Absolute {
		return hi - lo
	}
	if med == 0 {
		return 0
	}
	return (hi - lo) / math.Abs(med)
}

// Calibrate raises the rule's minimum effect to SpreadFactor × the
// baseline's spread when that is larger: a series whose runs scatter by
// 30 % cannot regress by 10 %, one as steady as 2 % keeps the rule's.
func Calibrate(rule Rule, base []float64) Rule {
	if e := SpreadFactor * Spread(rule, base); e > rule.MinEffect && !math.IsInf(e, 0) {
		rule.MinEffect = e
	}
	return rule
}

// Family is the Benjamini–Hochberg family of a series: the quantiles of
// one distribution (http_req_duration p50/p95/p99 of one leg × scenario ×
// op, or iteration_response_time's), every other series a family of its
// own. See AdjustFamilies for why not one family per gate.
func Family(k Key) string {
	m := k.Metric
	for _, q := range []string{"_p50_ms", "_p95_ms", "_p99_ms"} {
		if strings.HasSuffix(m, q) {
			m = strings.TrimSuffix(m, q) + "_ms"
			break
		}
	}
	op := k.Op
	if op == "" {
		op = "(all)"
	}
	return k.Leg + "/" + k.Scenario + "/" + op + "/" + m
}

// BenjaminiHochberg returns which of ps the step-up procedure rejects at
// false discovery rate q: the k smallest, where k is the largest rank with
// p_(k) ≤ k/m·q (Benjamini & Hochberg 1995).
func BenjaminiHochberg(ps []float64, q float64) []bool {
	m := len(ps)
	idx := make([]int, m)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return ps[idx[a]] < ps[idx[b]] })
	k := 0
	for r := 1; r <= m; r++ {
		if ps[idx[r-1]] <= float64(r)/float64(m)*q {
			k = r
		}
	}
	out := make([]bool, m)
	for _, i := range idx[:k] {
		out[i] = true
	}
	return out
}

// AdjustFamilies applies Benjamini–Hochberg at alpha within each family
// of results (Family): a regression or improvement whose p the procedure
// does not reject becomes a pass, with the reason. Inconclusive results
// take no part.
//
// Why families of one distribution's quantiles and not every series of a
// gate: with 4 + 4 runs the exact U test's smallest p is 2/70 = 0.029,
// and BH over m series rejects at that p only when at least 0.57·m of
// them reach it; over a gate's ~40 series a slowdown that moves one
// operation (a dozen series) could never fail. Within a family of
// quantiles, two of three moving suffices. Across families, false alarms
// are held down by the calibrated minimum effects (Calibrate).
func AdjustFamilies(rs []Result, alpha float64) {
	fams := map[string][]int{}
	var order []string
	for i := range rs {
		if rs[i].Verdict == Inconclusive {
			continue
		}
		f := Family(rs[i].Key)
		if fams[f] == nil {
			order = append(order, f)
		}
		fams[f] = append(fams[f], i)
	}
	for _, f := range order {
		idx := fams[f]
		ps := make([]float64, len(idx))
		for j, i := range idx {
			ps[j] = rs[i].P
		}
		rej := BenjaminiHochberg(ps, alpha)
		for j, i := range idx {
			r := &rs[i]
			r.Family, r.FamilySize = f, len(idx)
			if rej[j] || (r.Verdict != Regressed && r.Verdict != Improved) {
				continue
			}
			r.Reason = fmt.Sprintf("%s, but not significant after Benjamini–Hochberg over the %d series of %s (needed p ≤ %.3f)",
				r.Reason, len(idx), f, alpha/float64(len(idx))*float64(rankOf(ps, j)))
			r.Verdict = Pass
		}
	}
}

// rankOf is the 1-based rank of ps[j] in ascending order.
func rankOf(ps []float64, j int) int {
	r := 1
	for i, p := range ps {
		if p < ps[j] || (p == ps[j] && i < j) {
			r++
		}
	}
	return r
}
