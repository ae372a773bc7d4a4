package load

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Threshold is a pass/fail criterion in k6's syntax: Metric is a metric
// name with an optional sub-metric selector ("http_req_duration" or
// "http_req_duration{op:signal,status:200}"), Expr an aggregation compared
// with a number ("p(95)<500", "rate<0.01", "count>0").
//
// Aggregations by metric type: trend avg, min, max, med, p(N) (ms for
// time trends); rate rate (0..1); counter count, rate (per second);
// gauge value, min, max. Operators: < <= > >= == != (and k6's ===).
type Threshold struct {
	Metric         string
	Expr           string
	AbortOnFail    bool          // stop the test as soon as it fails
	DelayAbortEval time.Duration // do not abort before this much of the test has run
	Source         string        // where it was defined ("file.yaml:12"), for errors
}

// ThresholdResult is the outcome of one threshold.
type ThresholdResult struct {
	Metric   string  `json:"metric"`
	Expr     string  `json:"expr"`
	OK       bool    `json:"ok"`
	Observed float64 `json:"observed"`
	// Message says why a threshold failed without a value: its trend or
	// rate had no samples, so it cannot be evaluated.
	Message string `json:"message,omitempty"`
}

type compiled struct {
	Threshold
	name   string
	filter map[string]string
	agg    string // avg min max med p count rate value
	q      float64
	op     string
	bound  float64
}

func (t Threshold) errorf(format string, a ...any) error {
	where := ""
	if t.Source != "" {
		where = t.Source + ": "
	}
	return fmt.Errorf("%sthreshold %q on %q: %s", where, t.Expr, t.Metric, fmt.Sprintf(format, a...))
}

// parseMetricKey splits "name{k:v,k2:v2}".
func parseMetricKey(key string) (string, map[string]string, error) {
	key = strings.TrimSpace(key)
	name, rest, ok := strings.Cut(key, "{")
	name = strings.TrimSpace(name)
	if !metricName.MatchString(name) {
		return "", nil, fmt.Errorf("metric name %q is not valid (letters, digits, _)", name)
	}
	if !ok {
		return name, nil, nil
	}
	if !strings.HasSuffix(rest, "}") {
		return "", nil, fmt.Errorf("sub-metric selector of %q must end with }", key)
	}
	rest = strings.TrimSuffix(rest, "}")
	filter := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(part, ":")
		k = strings.TrimSpace(k)
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		if !ok || k == "" || v == "" {
			return "", nil, fmt.Errorf("sub-metric selector %q: want tag:value pairs separated by commas, e.g. {op:signal,status:200}", "{"+rest+"}")
		}
		var probe Tags
		if !probe.set(k, v) {
			return "", nil, fmt.Errorf("sub-metric selector %q: unknown tag %q (known tags: %s)", "{"+rest+"}", k, strings.Join(TagKeys, ", "))
		}
		filter[k] = v
	}
	return name, filter, nil
}

var operators = []string{"<=", ">=", "===", "==", "!=", "<", ">"}

// compile parses the threshold and checks it against the registered
// metrics (nil: syntax only).
func (t Threshold) compile(metrics map[string]*Metric) (*compiled, error) {
	c := &compiled{Threshold: t}
	var err error
	c.name, c.filter, err = parseMetricKey(t.Metric)
	if err != nil {
		return nil, t.errorf("%v", err)
	}
	expr := strings.TrimSpace(t.Expr)
	if expr == "" {
		return nil, t.errorf("empty expression; write e.g. p(95)<500 or rate<0.01")
	}
	idx, op := -1, ""
	for _, o := range operators {
		if i := strings.Index(expr, o); i >= 0 && (idx < 0 || i < idx || (i == idx && len(o) > len(op))) {
			idx, op = i, o
		}
	}
	if idx < 0 {
		return nil, t.errorf("no comparison operator; use one of < <= > >= == !=")
	}
	lhs, rhs := strings.TrimSpace(expr[:idx]), strings.TrimSpace(expr[idx+len(op):])
	if op == "===" {
		op = "=="
	}
	c.op = op
	c.bound, err = strconv.ParseFloat(rhs, 64)
	if err != nil || math.IsNaN(c.bound) {
		return nil, t.errorf("%q is not a number", rhs)
	}
	switch {
	case strings.HasPrefix(lhs, "p(") && strings.HasSuffix(lhs, ")"):
		q, err := strconv.ParseFloat(strings.TrimSpace(lhs[2:len(lhs)-1]), 64)
		if err != nil || q < 0 || q > 100 {
			return nil, t.errorf("percentile %q: want p(N) with 0 ≤ N ≤ 100, e.g. p(95) or p(99.9)", lhs)
		}
		c.agg, c.q = "p", q
	case lhs == "avg", lhs == "min", lhs == "max", lhs == "med", lhs == "count", lhs == "rate", lhs == "value":
		c.agg = lhs
	case lhs == "":
		return nil, t.errorf("missing aggregation before %q; e.g. p(95)%s%s", op, op, rhs)
	default:
		return nil, t.errorf("unknown aggregation %q; use avg, min, max, med, p(N), count, rate or value", lhs)
	}
	if metrics == nil {
		return c, nil
	}
	m := metrics[c.name]
	if m == nil {
		return nil, t.errorf("no metric %q in this test (built-in: %s; or a custom metric of the workload)", c.name, strings.Join(slices.Sorted(maps.Keys(builtin)), ", "))
	}
	valid := map[MetricType][]string{
		Counter: {"count", "rate"},
		Gauge:   {"value", "min", "max"},
		Rate:    {"rate"},
		Trend:   {"avg", "min", "max", "med", "p(N)"},
	}[m.Type]
	ok := false
	for _, v := range valid {
		if v == c.agg || (v == "p(N)" && c.agg == "p") {
			ok = true
		}
	}
	if !ok {
		return nil, t.errorf("%s is not an aggregation of %s metrics; use %s", lhsName(c), m.Type, strings.Join(valid, ", "))
	}
	return c, nil
}

func lhsName(c *compiled) string {
	if c.agg == "p" {
		return fmt.Sprintf("p(%g)", c.q)
	}
	return c.agg
}

// ValidateThresholds checks the syntax of thresholds (the metrics they
// name are checked when the run starts, once the workload registered its
// custom metrics).
func ValidateThresholds(ts []Threshold) error {
	for _, t := range ts {
		if _, err := t.compile(nil); err != nil {
			return err
		}
	}
	return nil
}

// observe computes the aggregation over the state; ok is false when a
// trend or rate has no samples (its aggregations are undefined, not 0).
// Counters and gauges with no samples are 0, a real value.
func (c *compiled) observe(st *state, dur time.Duration) (v float64, ok bool) {
	a, m := st.selectAgg(c.name, c.filter)
	if a == nil {
		return 0, false
	}
	if a.count == 0 && (m.Type == Trend || m.Type == Rate) {
		return 0, false
	}
	if c.agg == "p" {
		return pct(a, c.q), true
	}
	return values(m, a, dur)[c.agg], true
}

func (c *compiled) holds(v float64) bool {
	switch c.op {
	case "<":
		return v < c.bound
	case "<=":
		return v <= c.bound
	case ">":
		return v > c.bound
	case ">=":
		return v >= c.bound
	case "==":
		return v == c.bound
	case "!=":
		return v != c.bound
	}
	return false
}

func (c *compiled) evaluate(st *state, dur time.Duration) ThresholdResult {
	v, ok := c.observe(st, dur)
	if !ok {
		// k6 leaves such a threshold passing; a load test whose latency
		// threshold saw no request (dead target, misspelt tag) must not pass.
		return ThresholdResult{Metric: c.Metric, Expr: c.Expr, OK: false,
			Message: fmt.Sprintf("no samples for %s: the threshold cannot be evaluated", c.Metric)}
	}
	return ThresholdResult{Metric: c.Metric, Expr: c.Expr, OK: c.holds(v), Observed: v}
}

func compileAll(ts []Threshold, metrics map[string]*Metric) ([]*compiled, error) {
	out := make([]*compiled, 0, len(ts))
	for _, t := range ts {
		c, err := t.compile(metrics)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
