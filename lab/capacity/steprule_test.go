package capacity

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

func TestSamplesFor(t *testing.T) {
	for _, c := range []struct {
		q, eps, conf float64
		want         int
	}{
		{0.99, 0.5, 0.95, 1522},
		{0.99, 1, 0.95, 381},
		{0.95, 0.5, 0.95, 292},
		{0.95, 1, 0.95, 73},
		{0.999, 0.5, 0.95, 15351},
		{0.5, 0.5, 0.95, 16},
		{0.01, 0.5, 0.95, 1522}, // a lower tail: the same binomial question
		{0.99, 0.5, 0.99, 2628},
		{1, 0.5, 0.95, 0}, // p(100): no count of samples makes the max precise
		{0, 0.5, 0.95, 0},
		{0.99, 0, 0.95, 0},
		{0.99, 0.5, 1, 0},
	} {
		if got := SamplesFor(c.q, c.eps, c.conf); got != c.want {
			t.Errorf("SamplesFor(%v, %v, %v) = %d, want %d", c.q, c.eps, c.conf, got, c.want)
		}
	}
}

// The rule's promise, checked against the exact distribution: with n =
// SamplesFor(q, ε, 95 %) samples the rank F(X₍ₖ₎) of the sample quantile,
// k = ⌈nq⌉, is Beta(k, n+1−k) whatever the latencies' distribution, and
// lies within q ± ε(1−q) with probability ≈ 95 %; with a quarter of the
// samples the interval is twice as wide and the coverage falls to about
// two thirds.
func TestSamplesForCoverage(t *testing.T) {
	coverage := func(q, eps float64, n int) float64 {
		k := math.Ceil(float64(n) * q)
		b := distuv.Beta{Alpha: k, Beta: float64(n) + 1 - k}
		w := eps * math.Min(q, 1-q)
		return b.CDF(math.Min(q+w, 1)) - b.CDF(math.Max(q-w, 0))
	}
	for _, c := range []struct{ q, eps float64 }{{0.99, 0.5}, {0.99, 1}, {0.95, 0.5}, {0.999, 0.5}, {0.9, 0.25}} {
		n := SamplesFor(c.q, c.eps, 0.95)
		if got := coverage(c.q, c.eps, n); got < 0.93 || got > 0.97 {
			t.Errorf("p(%v), ε=%v: %d samples cover the rank band with probability %.3f, want ≈ 0.95", 100*c.q, c.eps, n, got)
		}
		// (At ε = 1 the band's top is the maximum, and a skewed Beta keeps
		// more of its mass below it: only the narrower bands are checked.)
		if got := coverage(c.q, c.eps, n/4); c.eps < 1 && got > 0.8 {
			t.Errorf("p(%v), ε=%v: a quarter of the samples (%d) still covers with %.3f: the rule asks for too many", 100*c.q, c.eps, n/4, got)
		}
	}
	// The same by simulation: ranks of uniform samples are the ranks of
	// any distribution's.
	rng := rand.New(rand.NewPCG(7, 8))
	const q, eps, trials = 0.99, 1.0, 3000
	n := SamplesFor(q, eps, 0.95)
	xs := make([]float64, n)
	in := 0
	for range trials {
		for i := range xs {
			xs[i] = rng.Float64()
		}
		slices.Sort(xs)
		if r := xs[int(math.Ceil(float64(n)*q))-1]; math.Abs(r-q) <= eps*(1-q) {
			in++
		}
	}
	if got := float64(in) / trials; got < 0.93 || got > 0.975 {
		t.Errorf("simulated coverage %.3f with %d samples, want ≈ 0.95", got, n)
	}
}

func TestNewStepRule(t *testing.T) {
	th := func(metric, expr string) load.Threshold { return load.Threshold{Metric: metric, Expr: expr} }
	for _, c := range []struct {
		name          string
		slo           []load.Threshold
		samples, prob int
		settle        time.Duration
	}{
		{"p99 < 50 ms", []load.Threshold{th("http_req_duration", "p(99)<50")}, 1522, 381, time.Second},
		{"mix.yaml's", []load.Threshold{th("http_req_duration", "p(95)<500"), th("http_req_duration", "p(99) < 1000"),
			th("http_req_failed", "rate<0.01"), th("checks", "rate>0.99")}, 1522, 381, 20 * time.Second},
		{"p99.9, a bound that would settle for minutes", []load.Threshold{th("http_req_duration{op:signal}", "p(99.9)<=30000")}, 15351, 3838, MaxSettle},
		{"p95 < 10 ms: the settle floor", []load.Threshold{th("http_req_duration", "p(95)<10")}, 292, 73, MinSettle},
		{"avg and max: no sample rule", []load.Threshold{th("http_req_duration", "avg<100"), th("iteration_duration", "max<400")}, 0, 0, 8 * time.Second},
		{"a lower bound and a counter rate", []load.Threshold{th("http_req_duration", "p(99)>5"), th("http_reqs", "rate>100")}, 1522, 381, MinSettle},
	} {
		r := NewStepRule(c.slo, 0.05)
		if r.Samples != c.samples || r.ProbeSamples != c.prob || r.Settle != c.settle {
			t.Errorf("%s: samples %d, probe %d, settle %s; want %d, %d, %s", c.name, r.Samples, r.ProbeSamples, r.Settle, c.samples, c.prob, c.settle)
		}
	}
}

func TestStepRuleLengths(t *testing.T) {
	r := NewStepRule([]load.Threshold{{Metric: "http_req_duration", Expr: "p(99)<50"}}, 0.05) // 1,522 / 381 samples, 1 s settle
	for _, c := range []struct {
		rate, perIter float64
		probe         bool
		scale         float64
		settle, step  time.Duration
		full          bool
	}{
		{800, 1, false, 0, time.Second, MinStep, true},                              // 1.9 s of samples: the floor
		{100, 1, false, 0, time.Second, 15220 * time.Millisecond, true},             // 15.22 s
		{100, 2, false, 0, time.Second, 7610 * time.Millisecond, true},              // two requests per iteration
		{10, 1, false, 0, time.Second, MaxStep, true},                               // the ceiling: as full as a step gets
		{10, 1, true, 0, time.Second, MaxProbe, false},                              // a probe stops at 5 s with 50 samples
		{100, 1, true, 0, time.Second, 3810 * time.Millisecond, false},              // 381 samples, short of 1,522
		{400, 1, true, 0, time.Second, MinStep, false},                              // 800 samples in the floor
		{800, 1, true, 0, time.Second, MinStep, true},                               // 1,600 in the floor: full
		{100, 0, false, 0.1, 100 * time.Millisecond, 1522 * time.Millisecond, true}, // --scale 0.1
		{800, 1, false, 0.1, 100 * time.Millisecond, time.Second, true},             // never under 1 s
	} {
		rr := r
		rr.Scale = c.scale
		settle, step, full := rr.Lengths(c.rate, c.perIter, c.probe)
		if settle != c.settle || step != c.step || full != c.full {
			t.Errorf("%v it/s × %v, probe %v, scale %v: settle %s, step %s, full %v; want %s, %s, %v",
				c.rate, c.perIter, c.probe, c.scale, settle, step, full, c.settle, c.step, c.full)
		}
	}
}

// A failure is the lab's stall's when the stall alone could have pushed
// the failing tail over the bound: L plus the tail's share of the judged
// phase (here 50 ms + 1 % of 5 s = 100 ms for a p99 failure).
func TestStallExplains(t *testing.T) {
	slo := func(metric, expr string) []Threshold { return []Threshold{{Metric: metric, Expr: expr}} }
	p99 := slo("http_req_duration", "p(99)<50")
	for _, c := range []struct {
		name          string
		slo           []Threshold
		p50, p95, p99 float64
		stall         float64
		want          bool
	}{
		{"a p99 failure, a 214 ms stall", p99, 1.4, 20, 101, 214, true},
		{"a p99 failure, a 90 ms stall", p99, 1.4, 20, 101, 90, false},
		{"half the samples over: an overload", p99, 524, 700, 744, 245, false},
		{"5 % over needs 300 ms", p99, 10, 60, 120, 310, true},
		{"5 % over, a 250 ms stall", p99, 10, 60, 120, 250, false},
		{"an error rate failure", slo("http_req_failed", "rate<0.01"), 1, 2, 3, 5000, false},
		{"a tagged subset", slo("http_req_duration{op:signal}", "p(99)<50"), 1, 2, 80, 5000, false},
		{"an average", slo("http_req_duration", "avg<50"), 1, 2, 80, 5000, false},
		{"the expected-response selector", slo("http_req_duration{expected_response:true}", "p(99)<50"), 1.4, 20, 101, 214, true},
	} {
		st := Step{SLO: c.slo, P50: c.p50, P95: c.p95, P99: c.p99, LabStallMS: c.stall, DurationS: 5}
		if got := stallExplains(&st); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		st.SLO = append([]Threshold{{Metric: "http_req_duration", Expr: "p(95)<500", OK: true}}, st.SLO...) // a passing one does not matter
		if got := stallExplains(&st); got != c.want {
			t.Errorf("%s, beside a passing threshold: %v, want %v", c.name, got, c.want)
		}
	}
	if stallExplains(&Step{SLOOK: true, LabStallMS: 1000}) {
		t.Error("a passing step explained")
	}
}
