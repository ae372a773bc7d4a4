package baseline

import (
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/perf/benchmath"
)

// Metric names the lab records per leg and scenario, one value per run.
const (
	ReqDurationP50 = "http_req_duration_p50_ms"
	ReqDurationP95 = "http_req_duration_p95_ms"
	ReqDurationP99 = "http_req_duration_p99_ms"
	IterRespP50    = "iteration_response_time_p50_ms"
	IterRespP95    = "iteration_response_time_p95_ms"
	IterRespP99    = "iteration_response_time_p99_ms"
	AchievedRate   = "achieved_rps"
	ErrorRate      = "error_rate"
	CacheHitRate   = "cache_hit_rate"
	CostPer1K      = "cost_per_1k_usd"
	Dropped        = "dropped_iterations"
	// HTTPReqs is an operation's request count per run (per-op series
	// only; the aggregate has achieved_rps).
	HTTPReqs = "http_reqs"
)

// Unit returns the display unit of a metric name.
func Unit(metric string) string {
	switch {
	case strings.HasSuffix(metric, "_ms"):
		return "ms"
	case strings.HasSuffix(metric, "_usd"):
		return "USD"
	case metric == AchievedRate:
		return "req/s"
	case metric == HTTPReqs:
		return "req"
	case strings.HasSuffix(metric, "_rate"):
		return "ratio"
	}
	return ""
}

// Direction says which way is better.
type Direction int

const (
	LowerIsBetter Direction = iota
	HigherIsBetter
)

func (d Direction) String() string {
	if d == HigherIsBetter {
		return "higher is better"
	}
	return "lower is better"
}

// Rule is the minimum effect that counts for metrics matching Pattern (a
// path.Match glob on the metric name). Relative effects are fractions of
// the baseline median (0.10 = 10 %); absolute ones are in the metric's
// unit (0.05 on a 0..1 rate = 5 points).
type Rule struct {
	Pattern   string    `json:"pattern" yaml:"pattern"`
	Direction Direction `json:"direction" yaml:"-"`
	MinEffect float64   `json:"min_effect" yaml:"-"`
	Absolute  bool      `json:"absolute" yaml:"-"`
}

// EffectString renders the minimum effect in the worse direction.
func (r Rule) EffectString() string {
	sign := "+"
	if r.Direction == HigherIsBetter {
		sign = "-"
	}
	if r.Absolute {
		if strings.HasSuffix(r.Pattern, "rate") && r.MinEffect < 1 {
			return fmt.Sprintf("%s%g pt", sign, round(r.MinEffect*100, 3))
		}
		return fmt.Sprintf("%s%g", sign, r.MinEffect)
	}
	return fmt.Sprintf("%s%.3g%%", sign, r.MinEffect*100)
}

// DefaultRules: latency +10 %, cache hit −5 points, cost per 1k +5 %,
// error rate +1 point, achieved rate and an op's request count −10 %,
// dropped iterations +10 %. The
// latency and rate defaults were chosen from the gate's measured false
// alarm and miss rates (docs/lab.md).
func DefaultRules() Rules {
	return Rules{
		{Pattern: "*_ms", Direction: LowerIsBetter, MinEffect: 0.10},
		{Pattern: CacheHitRate, Direction: HigherIsBetter, MinEffect: 0.05, Absolute: true},
		{Pattern: CostPer1K, Direction: LowerIsBetter, MinEffect: 0.05},
		{Pattern: ErrorRate, Direction: LowerIsBetter, MinEffect: 0.01, Absolute: true},
		{Pattern: AchievedRate, Direction: HigherIsBetter, MinEffect: 0.10},
		{Pattern: HTTPReqs, Direction: HigherIsBetter, MinEffect: 0.10},
		{Pattern: Dropped, Direction: LowerIsBetter, MinEffect: 0.10},
	}
}

// Rules are searched in order; the first matching pattern wins.
type Rules []Rule

// For returns the rule of a metric; unknown metrics get lower-is-better,
// +10 %.
func (rs Rules) For(metric string) Rule {
	return rs.ForKey(Key{Metric: metric})
}

// ForKey returns the rule of a series. A pattern with a "/" is matched
// against the key's Name (op/metric: "signal/http_req_duration_p99_ms",
// "signal:*/*_ms"; an aggregate's Name has no op) and wins over one
// without, which is matched against the metric alone, so "*_ms" covers
// every op and the aggregate. Among each kind the first match wins (later
// overrides come first).
func (rs Rules) ForKey(k Key) Rule {
	for _, r := range rs {
		if strings.Contains(r.Pattern, "/") {
			if ok, _ := path.Match(r.Pattern, k.Name()); ok {
				return r
			}
		}
	}
	for _, r := range rs {
		if !strings.Contains(r.Pattern, "/") {
			if ok, _ := path.Match(r.Pattern, k.Metric); ok {
				return r
			}
		}
	}
	return Rule{Pattern: k.Metric, Direction: LowerIsBetter, MinEffect: 0.10}
}

// Override sets the minimum effect of the metrics matching pattern from a
// string: "10%" (relative to the baseline median), "5pt" (absolute points
// of a 0..1 rate) or a bare number (absolute, in the metric's unit). The
// direction is kept from the rule that matched before.
func (rs Rules) Override(pattern, effect string) (Rules, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return rs, fmt.Errorf("min effect pattern %q: %w", pattern, err)
	}
	metric := pattern
	if _, m, ok := strings.Cut(pattern, "/"); ok {
		metric = m
	}
	if strings.Count(pattern, "/") > 1 {
		return rs, fmt.Errorf("min effect pattern %q: want METRIC or OP/METRIC (e.g. signal/http_req_duration_p99_ms), not leg or scenario", pattern)
	}
	r := rs.For(metric)
	r.Pattern = pattern
	s := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(effect), "+"), "-")
	var err error
	switch {
	case strings.HasSuffix(s, "%"):
		r.Absolute = false
		r.MinEffect, err = strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
		r.MinEffect /= 100
	case strings.HasSuffix(s, "pt"):
		r.Absolute = true
		r.MinEffect, err = strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "pt")), 64)
		r.MinEffect /= 100
	default:
		r.Absolute = true
		r.MinEffect, err = strconv.ParseFloat(s, 64)
	}
	if err != nil || r.MinEffect < 0 || math.IsNaN(r.MinEffect) || math.IsInf(r.MinEffect, 0) {
		return rs, fmt.Errorf("min effect for %s = %q: want a percentage (10%%), points of a rate (5pt) or a non-negative number", pattern, effect)
	}
	return append(Rules{r}, rs...), nil
}

// Verdict of one metric's comparison.
type Verdict string

const (
	Pass         Verdict = "pass"
	Regressed    Verdict = "regressed"
	Improved     Verdict = "improved"
	Inconclusive Verdict = "inconclusive"
)

// Result is one metric's comparison.
type Result struct {
	Key
	Unit       string    `json:"unit,omitempty"`
	Verdict    Verdict   `json:"verdict"`
	Reason     string    `json:"reason"`
	Baseline   []float64 `json:"baseline"`
	Candidate  []float64 `json:"candidate"`
	BaseMedian float64   `json:"base_median"`
	CandMedian float64   `json:"cand_median"`
	// Change is the candidate's median relative to the baseline's (0.12 =
	// 12 % higher); NaN-free: +Inf is written as a large number.
	Change    float64 `json:"change"`
	Delta     float64 `json:"delta"` // CandMedian - BaseMedian
	P         float64 `json:"p"`
	Alpha     float64 `json:"alpha"`
	MinEffect string  `json:"min_effect"`
	Direction string  `json:"direction"`
	// Calibrated tells that MinEffect is SpreadFactor × the baseline's own
	// run-to-run range, larger than the rule's (calibrate.go).
	Calibrated bool `json:"calibrated,omitempty"`
	// Family names the Benjamini–Hochberg family the p was judged in and
	// FamilySize its size (calibrate.go).
	Family     string `json:"family,omitempty"`
	FamilySize int    `json:"family_size,omitempty"`
	// Bound says what the series' time depends on: "cpu" (this machine's
	// CPU, e.g. password hashing), "llm" (time in the simulated LLM, not
	// the machine), "mixed"; set by the lab, empty when unknown.
	Bound string `json:"bound,omitempty"`
}

// Alpha is the significance level of the U test (benchstat's default).
const Alpha = 0.05

// Compare compares the candidate's per-run values with the baseline's:
// regressed (or improved) only when the U test rejects "same
// distribution" at alpha AND the medians differ by at least the rule's
// minimum effect in the worse (better) direction.
func Compare(k Key, base, cand []float64, rule Rule, alpha float64) Result {
	res := Result{Key: k, Unit: Unit(k.Metric), Alpha: alpha, MinEffect: rule.EffectString(), Direction: rule.Direction.String(),
		Baseline: append([]float64(nil), base...), Candidate: append([]float64(nil), cand...), P: 1}
	sort.Float64s(res.Baseline)
	sort.Float64s(res.Candidate)
	if len(base) == 0 {
		res.Verdict, res.Reason = Inconclusive, "no baseline values for this metric"
		return res
	}
	if len(cand) == 0 {
		res.Verdict, res.Reason = Inconclusive, "no candidate values for this metric"
		return res
	}
	res.BaseMedian, res.CandMedian = median(res.Baseline), median(res.Candidate)
	res.Delta = res.CandMedian - res.BaseMedian
	res.Change = relChange(res.BaseMedian, res.CandMedian)

	th := benchmath.Thresholds{CompareAlpha: alpha}
	cmp := benchmath.AssumeNothing.Compare(benchmath.NewSample(append([]float64(nil), base...), &th),
		benchmath.NewSample(append([]float64(nil), cand...), &th))
	res.P = cmp.P

	// worse > 0 means the candidate moved in the bad direction by that
	// much, in the rule's terms (relative fraction or absolute units).
	effect := res.Change
	if rule.Absolute {
		effect = res.Delta
	}
	worse := effect
	if rule.Direction == HigherIsBetter {
		worse = -effect
	}
	beyond := math.Abs(worse) >= rule.MinEffect && worse != 0

	if minP := MinPossibleP(len(base), len(cand)); minP > alpha {
		res.Verdict = Inconclusive
		res.Reason = fmt.Sprintf("too few runs: with %d baseline and %d candidate runs the U test cannot reach p<%g (best possible p=%.3f); use at least 4 runs each (or 5+3)",
			len(base), len(cand), alpha, minP)
		return res
	}
	switch {
	case cmp.P >= alpha:
		res.Verdict = Pass
		res.Reason = fmt.Sprintf("no significant difference (p=%.3f ≥ %g)", cmp.P, alpha)
	case !beyond:
		res.Verdict = Pass
		res.Reason = fmt.Sprintf("significant (p=%.3f) but %s is within the minimum effect %s", cmp.P, formatEffect(rule, effect), rule.EffectString())
	case worse > 0:
		res.Verdict = Regressed
		res.Reason = fmt.Sprintf("%s (p=%.3f), beyond the minimum effect %s", formatEffect(rule, effect), cmp.P, rule.EffectString())
	default:
		res.Verdict = Improved
		res.Reason = fmt.Sprintf("%s (p=%.3f), better by more than %s", formatEffect(rule, effect), cmp.P, strings.TrimLeft(rule.EffectString(), "+-"))
	}
	return res
}

// MinPossibleP is the smallest two-sided p-value the U test can give for
// samples of sizes n1 and n2 without ties: 2 / C(n1+n2, n1).
func MinPossibleP(n1, n2 int) float64 {
	c := 1.0
	for i := 1; i <= n2; i++ {
		c = c * float64(n1+i) / float64(i)
	}
	return math.Min(1, 2/c)
}

// MinRuns is the smallest equal number of runs per side that can reach alpha.
func MinRuns(alpha float64) int {
	for n := 1; n < 50; n++ {
		if MinPossibleP(n, n) <= alpha {
			return n
		}
	}
	return 50
}

// RunsNeeded is the fewest runs a side needs, against other's runs on the
// other side, for the U test to be able to reach alpha (0: not within 50).
func RunsNeeded(other int, alpha float64) int {
	for n := 1; n <= 50; n++ {
		if MinPossibleP(other, n) <= alpha {
			return n
		}
	}
	return 0
}

func formatEffect(r Rule, effect float64) string {
	if r.Absolute {
		if strings.HasSuffix(r.Pattern, "rate") && math.Abs(effect) < 1 {
			return fmt.Sprintf("%+.2f pt", effect*100)
		}
		return fmt.Sprintf("%+.4g", effect)
	}
	if math.IsInf(effect, 0) || effect > 1e6 {
		return "from 0 to non-zero"
	}
	return fmt.Sprintf("%+.1f%%", effect*100)
}

func relChange(base, cand float64) float64 {
	switch {
	case base == cand:
		return 0
	case base == 0:
		return math.Copysign(1e9, cand) // from zero: "infinitely" larger, JSON-safe
	}
	return (cand - base) / math.Abs(base)
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// Comparison is every metric's result and the overall verdict.
type Comparison struct {
	Results []Result `json:"results"`
	// Warnings: machine mismatch, metrics only on one side.
	Warnings []string `json:"warnings,omitempty"`
}

// Counts returns how many results have each verdict.
func (c Comparison) Counts() map[Verdict]int {
	m := map[Verdict]int{}
	for _, r := range c.Results {
		m[r.Verdict]++
	}
	return m
}

// Regressed tells whether any metric regressed.
func (c Comparison) Regressed() bool { return c.Counts()[Regressed] > 0 }

// Judged tells whether at least one series could be judged (is not
// inconclusive): a comparison with none cannot pass.
func (c Comparison) Judged() bool { return len(c.Results) > c.Counts()[Inconclusive] }

// CompareSamples compares every series present in both base and cand,
// with each series' minimum effect calibrated from base's spread
// (Calibrate) and its p judged by Benjamini–Hochberg within its family
// (Family); series on one side only are listed as warnings, one per leg
// that is missing altogether.
func CompareSamples(base, cand Samples, rules Rules, alpha float64) Comparison {
	var c Comparison
	var notInBase []Key
	for _, k := range cand.Keys() {
		b, ok := base[k]
		if !ok {
			notInBase = append(notInBase, k)
			continue
		}
		c.Results = append(c.Results, Compare(k, b, cand[k], Calibrate(rules.ForKey(k), b), alpha))
	}
	for i := range c.Results {
		c.Results[i].Calibrated = c.Results[i].MinEffect != rules.ForKey(c.Results[i].Key).EffectString()
	}
	AdjustFamilies(c.Results, alpha)
	var notMeasured []Key
	for _, k := range base.Keys() {
		if _, ok := cand[k]; !ok {
			notMeasured = append(notMeasured, k)
		}
	}
	c.Warnings = append(c.Warnings, missingWarnings(notInBase, cand, "not in the baseline (new metric, leg or scenario?)")...)
	c.Warnings = append(c.Warnings, missingWarnings(notMeasured, base, "in the baseline but not measured now (leg skipped?)")...)
	return c
}

// missingWarnings groups keys of one side only: one line per leg the
// other side lacks altogether, one per leg × scenario for the rest.
func missingWarnings(keys []Key, side Samples, what string) []string {
	if len(keys) == 0 {
		return nil
	}
	total := map[string]int{}
	for k := range side {
		total[k.Leg]++
	}
	missing := map[string][]Key{}
	var legs []string
	for _, k := range keys {
		if missing[k.Leg] == nil {
			legs = append(legs, k.Leg)
		}
		missing[k.Leg] = append(missing[k.Leg], k)
	}
	var out []string
	for _, leg := range legs {
		ks := missing[leg]
		if len(ks) == total[leg] {
			out = append(out, fmt.Sprintf("leg %s: %s (%d series)", leg, what, len(ks)))
			continue
		}
		byScenario := map[string][]string{}
		var scenarios []string
		for _, k := range ks {
			if byScenario[k.Scenario] == nil {
				scenarios = append(scenarios, k.Scenario)
			}
			byScenario[k.Scenario] = append(byScenario[k.Scenario], k.Name())
		}
		for _, sc := range scenarios {
			out = append(out, fmt.Sprintf("%s/%s: %s: %s", leg, sc, what, strings.Join(byScenario[sc], ", ")))
		}
	}
	return out
}

// CompareFile compares cand against a baseline file, warning when the
// baseline comes from another machine.
func CompareFile(f *File, cand Samples, rules Rules, alpha float64) Comparison {
	c := CompareSamples(f.Samples(), cand, rules, alpha)
	if ok, why := SameMachine(f.Machine, DescribeMachine()); !ok {
		c.Warnings = append([]string{fmt.Sprintf("baseline %s was measured on another machine (%s): absolute numbers may not compare (the rows that depend on the CPU move, the LLM-bound ones do not); prefer `gate --against REF`, or re-measure it here", f.Profile, why)}, c.Warnings...)
	}
	return c
}
