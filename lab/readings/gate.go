package readings

// The gate's per-run values of a leg: the aggregate's and each operation's
// series, and what each series' time depends on.

import (
	"strings"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// Minimum requests per run for an operation's series to enter the gate.
// An empirical q-quantile of n samples is an order statistic whose rank
// wanders by about sqrt(n·q·(1−q)); it is only stable when n·(1−q), the
// samples beyond it, is at least about 10: p50 from 20 requests, p95 from
// 200, p99 from 1,000. The error rate and the count need 100, so that one
// failed request is at most 1 point, the error rule's minimum effect.
const (
	MinOpReqsP50  = 20
	MinOpReqsP95  = 200
	MinOpReqsP99  = 1000
	MinOpReqsRate = 100
)

// LegSamples turns one leg-run into the gate's per-run values. The
// rate-limit check is a pass/fail check, not a measurement, and is left
// out; so are scenarios that did not run to the end.
func LegSamples(l report.Leg) map[baseline.Key]float64 {
	out := map[baseline.Key]float64{}
	for _, sc := range l.Scenarios {
		if sc.Name == "ratelimit" || sc.Error != "" || sc.Metrics.HTTPReqs == 0 {
			continue
		}
		m := sc.Metrics
		k := func(metric string) baseline.Key { return baseline.Key{Leg: l.Name, Scenario: sc.Name, Metric: metric} }
		out[k(baseline.ReqDurationP50)] = m.ReqP50
		out[k(baseline.ReqDurationP95)] = m.ReqP95
		out[k(baseline.ReqDurationP99)] = m.ReqP99
		out[k(baseline.IterRespP50)] = m.IterP50
		out[k(baseline.IterRespP95)] = m.IterP95
		out[k(baseline.IterRespP99)] = m.IterP99
		out[k(baseline.AchievedRate)] = m.AchievedRPS
		out[k(baseline.ErrorRate)] = m.ErrorRate
		out[k(baseline.Dropped)] = m.Dropped
		if sc.Server.CacheLookups > 0 {
			out[k(baseline.CacheHitRate)] = sc.Server.CacheHitRate
		}
		if sc.Server.Requests > 0 {
			out[k(baseline.CostPer1K)] = sc.Server.CostPer1K
		}
		for _, o := range m.Ops {
			k := func(metric string) baseline.Key {
				return baseline.Key{Leg: l.Name, Scenario: sc.Name, Op: o.Op, Metric: metric}
			}
			for _, q := range []struct {
				min    float64
				metric string
				v      float64
			}{
				{MinOpReqsP50, baseline.ReqDurationP50, o.ReqP50}, {MinOpReqsP95, baseline.ReqDurationP95, o.ReqP95},
				{MinOpReqsP99, baseline.ReqDurationP99, o.ReqP99},
				{MinOpReqsRate, baseline.ErrorRate, o.ErrorRate}, {MinOpReqsRate, baseline.HTTPReqs, o.HTTPReqs},
			} {
				if o.HTTPReqs >= q.min {
					out[k(q.metric)] = q.v
				}
			}
		}
	}
	return out
}

// AddLeg adds a leg's values to samples.
func AddLeg(s baseline.Samples, l report.Leg) {
	for k, v := range LegSamples(l) {
		s.Add(k, v)
	}
}

// DropPartialOps removes the per-operation series that not every one of
// runs runs had enough requests for: an op near its minimum would compare
// 3 values with 4 (which the U test cannot judge at 0.05), or measure a
// different mix of runs on each side. It returns what it removed.
func DropPartialOps(s baseline.Samples, runs int) []baseline.Key {
	var out []baseline.Key
	for _, k := range s.Keys() {
		if k.Op != "" && len(s[k]) < runs {
			delete(s, k)
			out = append(out, k)
		}
	}
	return out
}

// Bound says what a series' time depends on in the hal9 workload: the
// simulated LLM's latency (signals: the same on any machine), this
// machine's CPU (credential routes hash passwords at a bcrypt cost; the
// other routes are database and JSON work), or a mix (a scenario's
// aggregate). Empty for series that are not times.
func Bound(k baseline.Key) string {
	if !strings.HasSuffix(k.Metric, "_ms") {
		return ""
	}
	op, _, _ := strings.Cut(k.Op, ":")
	switch op {
	case "":
		return "mixed"
	case "signal", "async_signal":
		return "llm"
	case "auth", "setup":
		return "cpu (bcrypt)"
	}
	return "cpu"
}
