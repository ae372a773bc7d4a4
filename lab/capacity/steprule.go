package capacity

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

// How long a step lasts (when --step and --settle are not given).
//
// # Samples for a quantile: the order-statistic confidence interval
//
// An SLO threshold p(q) < L is judged on the step's sample quantile, the
// k-th smallest of n samples with k = ⌈nq⌉. Whatever the distribution F
// of the latencies, F(X₍ₖ₎) — the rank of the sample quantile in the true
// distribution — is Beta(k, n+1−k): mean ≈ q, standard deviation
// ≈ √(q(1−q)/n). So with confidence 1−α the sample quantile lies between
// the true quantiles of rank q ± z·√(q(1−q)/n), z = Φ⁻¹(1−α/2).
//
// The search needs that interval to be a fixed share ε of the tail: the
// sample p99 between the true p(99 − ε) and p(99 + ε) when ε is in
// percent of the 1 % tail. Asking z·√(q(1−q)/n) ≤ ε(1−q) gives
//
//	n ≥ z² · q / (ε² · (1−q))
//
// and, for a tail share t = min(q, 1−q) in general (a p(5) is judged on
// its lower tail), n ≥ z²(1−t)/(ε²t). At 95 % (z = 1.96): a p(99) needs
// 1,522 samples at ε = ½ (the sample p99 between the true p98.5 and
// p99.5) and 381 at ε = 1 (between p98 and p100); a p(95) 292 and 73; a
// p(99.9) 15,351 and 3,838; a median 16 and 4. A rate threshold rate < x
// is the same binomial question on the share x (its standard error
// √(x(1−x)/n) within εx): the same formula with t = min(x, 1−x), so
// http_req_failed rate < 0.01 needs 1,522 too.
//
// Why ε = ½ is precise enough for the bisection. The search tells apart
// rates a factor 1+p apart (p = --precision, 5 %). Near a knee the tail
// share f(λ) above the bound L rises steeply with the rate λ: for an
// M/M/1 queue f = e^−(μ−λ)L, so d ln f / d ln λ = λL, and a ±ε band
// around 1−q (ln((1+ε)/(1−ε)) = 2 artanh ε wide in ln f) spans a range of
// rates 2 artanh(ε)/(λL) wide in ln λ. That is within ln(1+p) when
// λL ≥ 2 artanh(ε)/ln(1+p): 22.5 for ε = ½ and p = 5 %, i.e. when the
// SLO's bound is at least 22 mean inter-arrival times at the knee (for
// L = 50 ms: a knee above 450 req/s). Below that the verdicts near the
// knee are noisier than the bisection's precision; the step ceiling
// bounds what the search spends on them.
//
// The ramp's probes ask only for ε = 1: the ramp doubles the rate, and a
// verdict within a factor two of the tail share brackets a knee the
// bisection then narrows with full steps (a probe shorter than a full step
// is confirmed by a full one when it ends up bounding the knee).
//
// # Seconds for a queue to build
//
// A server offered (1+p) times its capacity does not break a latency
// bound at once: its queue grows by p seconds of waiting per second (a
// FIFO queue served at capacity R receives (1+p)R requests of 1/R seconds
// of work each second), so it takes L/p seconds to reach the bound L
// (1 s for p99 < 50 ms at p = 5 %, 20 s for p99 < 1 s). The settle phase,
// which is not judged, lasts that long (within [MinSettle, MaxSettle]), so
// every judged sample of a step 1+p over capacity waits longer than L.
// The judged phase then lasts n/(rate × requests per iteration) seconds,
// within [MinStep, MaxStep] (MaxProbe for the ramp's probes).
const (
	// Confidence of the quantile's rank interval.
	Confidence = 0.95
	// RankPrecision (ε) of a full step: the judged quantile's rank within
	// ±ε of its tail share; ProbeRankPrecision for the ramp's probes.
	RankPrecision      = 0.5
	ProbeRankPrecision = 1.0
	// MinStep is the shortest judged phase (a couple of the engine's 1 s
	// ticks, GC cycles and scrapes inside it); MaxStep the longest one of
	// a full step, MaxProbe of a probe: low rates stop there with fewer
	// samples than the rule asks for.
	MinStep  = 2 * time.Second
	MaxStep  = 20 * time.Second
	MaxProbe = 5 * time.Second
	// MinSettle and MaxSettle bound the settle phase (L/p).
	MinSettle = 1 * time.Second
	MaxSettle = 30 * time.Second
)

// SamplesFor is the number of samples at which the rank of a sample
// quantile (or the standard error of a rate) lies within ±eps of the tail
// share t = min(q, 1−q) with the given two-sided confidence:
// ⌈z²(1−t)/(eps²·t)⌉. It is 0 when t is 0 (a p(100), a rate < 1): no
// sample count makes such a threshold's verdict precise.
func SamplesFor(q, eps, confidence float64) int {
	t := math.Min(q, 1-q)
	if !(t > 0) || !(eps > 0) || !(confidence > 0 && confidence < 1) {
		return 0
	}
	z := distuv.UnitNormal.Quantile(1 - (1-confidence)/2)
	return int(math.Ceil(z * z * (1 - t) / (eps * eps * t)))
}

// StepRule is how long each step of a search lasts, from its SLO.
type StepRule struct {
	Samples      int           // a full step's judged samples (the SLO's largest need)
	ProbeSamples int           // a probe's
	Settle       time.Duration // the unjudged phase: L/p for the SLO's largest latency bound L
	// Why: the thresholds that set Samples and Settle, for the summary.
	SamplesFrom, SettleFrom string
	// Scale multiplies every length (a lab --scale below 1 shortens
	// smoke runs); 0 is 1.
	Scale float64
}

// thresholdExpr reads an expression the load engine has validated.
var thresholdExpr = regexp.MustCompile(`^\s*(p\(\s*([0-9.]+)\s*\)|med|avg|max|min|rate|count|value)\s*(<=|>=|===|==|!=|<|>)\s*([-+0-9.eE]+)\s*$`)

// expr is a threshold expression taken apart: its aggregation ("p" for
// p(N)), the quantile as a fraction (p(N), med; -1 otherwise), the
// operator and the bound.
type expr struct {
	agg, op  string
	q, bound float64
}

func parseExpr(s string) (expr, bool) {
	m := thresholdExpr.FindStringSubmatch(s)
	if m == nil {
		return expr{}, false
	}
	e := expr{agg: m[1], op: m[3], q: -1}
	var err error
	if e.bound, err = strconv.ParseFloat(m[4], 64); err != nil {
		return expr{}, false
	}
	switch {
	case m[2] != "":
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return expr{}, false
		}
		e.agg, e.q = "p", v/100
	case e.agg == "med":
		e.q = 0.5
	}
	return e, true
}

// upperBound says whether e caps a latency quantile (p(N) or med below a
// positive bound).
func (e expr) upperBound() bool { return e.q >= 0 && (e.op == "<" || e.op == "<=") && e.bound > 0 }

// latencyMetrics are the trends whose bound a growing queue breaks.
var latencyMetrics = map[string]bool{load.MetricHTTPReqDuration: true, load.MetricHTTPReqWaiting: true,
	load.MetricIterDuration: true, load.MetricIterResponse: true}

// NewStepRule derives the step lengths from the SLO (thresholds as the
// load engine takes them) and the search's precision p.
func NewStepRule(slo []load.Threshold, precision float64) StepRule {
	r := StepRule{Settle: MinSettle}
	for _, t := range slo {
		e, ok := parseExpr(t.Expr)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(t.Metric, "{")
		q := e.q
		if e.agg == "rate" && name != load.MetricHTTPReqs && name != load.MetricIterations { // a counter's rate is per second
			q = e.bound
		}
		what := t.Metric + ":" + strings.TrimSpace(t.Expr)
		if q >= 0 {
			if n := SamplesFor(q, RankPrecision, Confidence); n > r.Samples {
				r.Samples, r.SamplesFrom = n, what
				r.ProbeSamples = SamplesFor(q, ProbeRankPrecision, Confidence)
			}
		}
		if latencyMetrics[name] && e.agg != "min" && e.agg != "rate" && (e.op == "<" || e.op == "<=") && e.bound > 0 && precision > 0 {
			if d := time.Duration(e.bound / precision * float64(time.Millisecond)); d > r.Settle {
				r.Settle, r.SettleFrom = min(d, MaxSettle), what
			}
		}
	}
	return r
}

// Lengths returns a step's settle and judged phase at rate iterations/s
// with perIter requests per iteration (≤ 0: 1), and whether the step is
// full: its judged phase holds the rule's full sample count, or is as long
// as a full step gets (MaxStep). A probe asks for ProbeSamples within
// MaxProbe, a full step for Samples within MaxStep.
func (r StepRule) Lengths(rate, perIter float64, probe bool) (settle, step time.Duration, full bool) {
	if perIter <= 0 {
		perIter = 1
	}
	n, ceiling := r.Samples, MaxStep
	if probe {
		n, ceiling = r.ProbeSamples, MaxProbe
	}
	need := time.Duration(float64(n) / (rate * perIter) * float64(time.Second))
	step = min(max(need, MinStep), ceiling)
	full = !probe || float64(r.Samples) <= step.Seconds()*rate*perIter
	scale := r.Scale
	if scale <= 0 {
		scale = 1
	}
	settle = time.Duration(float64(r.Settle) * scale)
	step = max(time.Duration(float64(step)*scale), time.Second)
	return settle, step, full
}

// String says the rule in a line (the summary's settings, progress).
func (r StepRule) String() string {
	s := fmt.Sprintf("judged phase: %d samples (probes %d) at %.0f %% confidence, within %s..%s (probes ..%s); settle %s",
		r.Samples, r.ProbeSamples, 100*Confidence, MinStep, MaxStep, MaxProbe, r.Settle)
	if r.SettleFrom != "" {
		s += " (" + r.SettleFrom + " ÷ precision)"
	}
	return s
}

// stallExplains says whether the lab's longest stall during a failed step
// explains the failure by itself. Requests that arrive during a stall of
// S ms wait up to S ms whatever the server does, so S ms break a bound L
// for about S − L ms of arrivals: the stall explains a failure when, for
// every failing threshold (a quantile of http_req_duration under L), S is
// at least L plus the share of samples over L — at least ½, 5 %, 1 % or
// 0.1 % by the step's p50, p95 and p99 — times the judged phase. (At high
// utilisation a stall's queue takes longer to drain than S, so shorter
// stalls break the SLO too; those failures count, and the confirmation
// step answers for them.)
func stallExplains(st *Step) bool {
	if st.SLOOK || st.LabStallMS <= 0 {
		return false
	}
	for _, t := range st.SLO {
		if t.OK {
			continue
		}
		name, sel, _ := strings.Cut(t.Metric, "{")
		e, ok := parseExpr(t.Expr)
		if name != load.MetricHTTPReqDuration || (sel != "" && sel != "expected_response:true}") || !ok || !e.upperBound() {
			return false
		}
		share := 0.001
		switch {
		case st.P50 > e.bound:
			share = 0.5
		case st.P95 > e.bound:
			share = 0.05
		case st.P99 > e.bound:
			share = 0.01
		}
		if st.LabStallMS < e.bound+share*st.DurationS*1000 {
			return false
		}
	}
	return true
}
