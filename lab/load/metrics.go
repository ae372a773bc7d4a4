package load

import (
	"fmt"
	"math"
	"regexp"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// MetricType is one of k6's four metric types.
type MetricType uint8

// The metric types.
const (
	Counter MetricType = iota + 1 // sums values: count and rate per second
	Gauge                         // last value, with min and max
	Rate                          // share of non-zero samples
	Trend                         // distribution: avg, min, med, max, p(N)
)

func (t MetricType) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case Rate:
		return "rate"
	case Trend:
		return "trend"
	}
	return "unknown"
}

func parseMetricType(s string) (MetricType, error) {
	for _, t := range []MetricType{Counter, Gauge, Rate, Trend} {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown metric type %q", s)
}

// ValueType says what a metric's values are (k6's "contains").
type ValueType uint8

// The value types.
const (
	Default ValueType = iota // plain numbers
	Time                     // milliseconds
	Data                     // bytes
)

func (v ValueType) String() string {
	switch v {
	case Time:
		return "time"
	case Data:
		return "data"
	}
	return "default"
}

func parseValueType(s string) ValueType {
	switch s {
	case "time":
		return Time
	case "data":
		return Data
	}
	return Default
}

// Metric is a registered metric. Trend values are milliseconds when
// Contains is Time (k6's convention) and are kept in an HdrHistogram at
// microsecond resolution (1 µs to 60 s, 3 significant digits).
type Metric struct {
	Name     string
	Type     MetricType
	Contains ValueType
	id       int
}

// The built-in metrics, with k6's names, plus iteration_response_time.
const (
	MetricHTTPReqs        = "http_reqs"
	MetricHTTPReqDuration = "http_req_duration"
	MetricHTTPReqFailed   = "http_req_failed"
	MetricHTTPReqWaiting  = "http_req_waiting"
	MetricIterations      = "iterations"
	MetricIterDuration    = "iteration_duration"
	MetricIterResponse    = "iteration_response_time"
	MetricVUs             = "vus"
	MetricVUsMax          = "vus_max"
	MetricChecks          = "checks"
	MetricDropped         = "dropped_iterations"
	MetricDataSent        = "data_sent"
	MetricDataReceived    = "data_received"
)

// Registry holds a run's metrics: the built-in ones and the custom ones a
// workload adds in Setup. It is frozen when VUs start.
type Registry struct {
	mu     sync.Mutex
	byName map[string]*Metric
	list   []*Metric
	frozen bool
}

var metricName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`)

// NewRegistry returns a registry holding the built-in metrics.
func NewRegistry() *Registry {
	r := &Registry{byName: map[string]*Metric{}}
	for _, m := range []struct {
		name string
		t    MetricType
		c    ValueType
	}{
		{MetricHTTPReqs, Counter, Default},
		{MetricHTTPReqDuration, Trend, Time},
		{MetricHTTPReqFailed, Rate, Default},
		{MetricHTTPReqWaiting, Trend, Time},
		{MetricIterations, Counter, Default},
		{MetricIterDuration, Trend, Time},
		{MetricIterResponse, Trend, Time},
		{MetricVUs, Gauge, Default},
		{MetricVUsMax, Gauge, Default},
		{MetricChecks, Rate, Default},
		{MetricDropped, Counter, Default},
		{MetricDataSent, Counter, Data},
		{MetricDataReceived, Counter, Data},
	} {
		if _, err := r.New(m.name, m.t, m.c); err != nil {
			panic(err) // the table above is constant
		}
	}
	return r
}

// New registers a metric, or returns the one already registered under the
// name when its type matches.
func (r *Registry) New(name string, t MetricType, contains ValueType) (*Metric, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.byName[name]; ok {
		if m.Type != t || m.Contains != contains {
			return nil, fmt.Errorf("metric %q is already registered as a %s of %s", name, m.Type, m.Contains)
		}
		return m, nil
	}
	if r.frozen {
		return nil, fmt.Errorf("metric %q: register custom metrics in Workload.Setup, before the VUs start", name)
	}
	if !metricName.MatchString(name) {
		return nil, fmt.Errorf("metric name %q: use letters, digits and _ (not starting with a digit), at most 128", name)
	}
	if t < Counter || t > Trend {
		return nil, fmt.Errorf("metric %q: unknown type %d", name, t)
	}
	m := &Metric{Name: name, Type: t, Contains: contains, id: len(r.list)}
	r.byName[name] = m
	r.list = append(r.list, m)
	return m, nil
}

// Get returns the metric registered under name, or nil.
func (r *Registry) Get(name string) *Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byName[name]
}

func (r *Registry) freeze() []*Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = true
	return append([]*Metric(nil), r.list...)
}

// Tags are the tags of a sample. The set of keys is fixed and every value
// comes from the workload's bounded vocabulary (operation names, route
// templates, status codes), so the number of series stays small.
type Tags struct {
	Scenario string
	Op       string // the workload's operation: signal, status, login, …
	// Layer is the entry layer a request addresses (hal9 signals: L1…L5),
	// "" for requests without one.
	Layer  string
	Name   string // the request's name: its route template
	Method string
	Status string // HTTP status code; "0" when no response came
	Check  string // checks only: the check's name
	// ExpectedResponse is "true" when a response came with an expected
	// status (k6's default: 200..399), "false" otherwise (http_* only).
	ExpectedResponse string
}

// TagKeys are the tag names usable in sub-metric selectors.
var TagKeys = []string{"scenario", "op", "layer", "name", "method", "status", "check", "expected_response"}

func (t Tags) get(key string) (string, bool) {
	switch key {
	case "scenario":
		return t.Scenario, true
	case "op":
		return t.Op, true
	case "layer":
		return t.Layer, true
	case "name":
		return t.Name, true
	case "method":
		return t.Method, true
	case "status":
		return t.Status, true
	case "check":
		return t.Check, true
	case "expected_response":
		return t.ExpectedResponse, true
	}
	return "", false
}

func (t *Tags) set(key, v string) bool {
	switch key {
	case "scenario":
		t.Scenario = v
	case "op":
		t.Op = v
	case "layer":
		t.Layer = v
	case "name":
		t.Name = v
	case "method":
		t.Method = v
	case "status":
		t.Status = v
	case "check":
		t.Check = v
	case "expected_response":
		t.ExpectedResponse = v
	default:
		return false
	}
	return true
}

func (t Tags) toMap() map[string]string {
	m := map[string]string{}
	for _, k := range TagKeys {
		if v, _ := t.get(k); v != "" {
			m[k] = v
		}
	}
	return m
}

// Histogram bounds: 1 µs to 60 s at 3 significant digits. Values are
// recorded in microseconds; values outside the range are clamped (and
// the exact min and max are kept apart from the histogram).
const (
	histLow  = 1
	histHigh = 60_000_000
	histSig  = 3
)

func newHist() *hdr.Histogram { return hdr.New(histLow, histHigh, histSig) }

func recordHist(h *hdr.Histogram, ms float64) {
	us := int64(math.Round(ms * 1000))
	if us < histLow {
		us = histLow
	} else if us > histHigh {
		us = histHigh
	}
	_ = h.RecordValue(us) // in range by construction
}

// agg is the running aggregate of one series (metric × tag set).
// Counter: sum. Rate: count and passes (non-zero samples). Gauge: last
// value in sum, min, max. Trend: count, sum, exact min and max, and the
// histogram for percentiles.
type agg struct {
	count    int64
	sum      float64
	min, max float64
	passes   int64
	hist     *hdr.Histogram
}

func newAgg(t MetricType) *agg {
	a := &agg{min: math.Inf(1), max: math.Inf(-1)}
	if t == Trend {
		a.hist = newHist()
	}
	return a
}

func (a *agg) add(t MetricType, v float64) {
	a.count++
	switch t {
	case Counter:
		a.sum += v
	case Gauge:
		a.sum = v
		a.min = math.Min(a.min, v)
		a.max = math.Max(a.max, v)
	case Rate:
		if v != 0 {
			a.passes++
		}
	case Trend:
		a.sum += v
		a.min = math.Min(a.min, v)
		a.max = math.Max(a.max, v)
		recordHist(a.hist, v)
	}
}

// merge folds b into a. Gauges from different segments add up (vus of two
// processes are the VUs of the test), so value, min and max are summed.
func (a *agg) merge(t MetricType, b *agg, segments bool) {
	a.count += b.count
	a.passes += b.passes
	switch t {
	case Gauge:
		if segments {
			a.sum += b.sum
			a.min = finiteOr(a.min, 0) + finiteOr(b.min, 0)
			a.max = finiteOr(a.max, 0) + finiteOr(b.max, 0)
			return
		}
		a.sum = b.sum
	default:
		a.sum += b.sum
	}
	a.min = math.Min(a.min, b.min)
	a.max = math.Max(a.max, b.max)
	if b.hist != nil {
		if a.hist == nil {
			a.hist = newHist()
		}
		a.hist.Merge(b.hist)
	}
}

func (a *agg) clone() *agg {
	c := *a
	if a.hist != nil {
		c.hist = newHist()
		c.hist.Merge(a.hist)
	}
	return &c
}

func finiteOr(v, d float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return d
	}
	return v
}

type seriesKey struct {
	metric int
	tags   Tags
}

// shard is one lock's worth of series. VUs are spread over shards so that
// recording rarely contends, and memory grows with shards × series, not
// with VUs (a histogram is ~140 KB).
type shard struct {
	mu     sync.Mutex
	series map[seriesKey]*agg
}

// secAgg is the current second of the time series, one for the run: the
// recorders' batches fold into it, and the tick reads and resets it.
type secAgg struct {
	reqs, fails, iters, dropped int64
	dur, irt                    *hdr.Histogram
	counters                    []float64  // by metric id: sums of custom counters
	rates                       [][2]int64 // by metric id: samples, passes of custom rates
}

func newSecAgg(nMetrics int) secAgg {
	return secAgg{dur: newHist(), irt: newHist(), counters: make([]float64, nMetrics), rates: make([][2]int64, nMetrics)}
}

func newShard() *shard {
	return &shard{series: map[seriesKey]*agg{}}
}

// lookup returns the series' aggregate; the caller holds sh.mu.
func (sh *shard) lookup(m *Metric, tags Tags) *agg {
	k := seriesKey{m.id, tags}
	a := sh.series[k]
	if a == nil {
		a = newAgg(m.Type)
		sh.series[k] = a
	}
	return a
}

// state is a merged, read-only picture of all series: what summaries,
// thresholds and segment merges work on.
type state struct {
	metrics map[string]*Metric
	series  map[stateKey]*agg
}

type stateKey struct {
	metric string
	tags   Tags
}

func newState() *state {
	return &state{metrics: map[string]*Metric{}, series: map[stateKey]*agg{}}
}

func (s *state) addSeries(m *Metric, tags Tags, a *agg, segments bool) {
	if _, ok := s.metrics[m.Name]; !ok {
		s.metrics[m.Name] = m
	}
	k := stateKey{m.Name, tags}
	if cur := s.series[k]; cur != nil {
		cur.merge(m.Type, a, segments)
		return
	}
	s.series[k] = a.clone()
}

// selectAgg merges the series of metric name whose tags match every
// key:value of filter (a sub-metric), or all of them for an empty filter.
func (s *state) selectAgg(name string, filter map[string]string) (*agg, *Metric) {
	if name == MetricHTTPReqDuration && len(filter) == 0 {
		// k6: the bare http_req_duration is http_req_duration{expected_response:true},
		// so failures (fast 500s, refused connections) cannot make latency look good.
		filter = expectedOnly
	}
	m := s.metrics[name]
	if m == nil {
		return nil, nil
	}
	out := newAgg(m.Type)
	out.count = 0
	n := 0
	for k, a := range s.series {
		if k.metric != name || !matches(k.tags, filter) {
			continue
		}
		if n == 0 && m.Type == Gauge {
			c := a.clone()
			out = c
		} else {
			out.merge(m.Type, a, false)
		}
		n++
	}
	return out, m
}

var expectedOnly = map[string]string{"expected_response": "true"}

func matches(t Tags, filter map[string]string) bool {
	for k, v := range filter {
		if got, _ := t.get(k); got != v {
			return false
		}
	}
	return true
}

// values computes the summary values of an aggregate the k6 way; dur is
// the test's duration for the per-second rate of counters.
func values(m *Metric, a *agg, dur time.Duration) map[string]float64 {
	v := map[string]float64{}
	switch m.Type {
	case Counter:
		v["count"] = a.sum
		v["rate"] = 0
		if dur > 0 {
			v["rate"] = a.sum / dur.Seconds()
		}
	case Gauge:
		v["value"] = finiteOr(a.sum, 0)
		v["min"] = finiteOr(a.min, 0)
		v["max"] = finiteOr(a.max, 0)
	case Rate:
		v["rate"] = 0
		if a.count > 0 {
			v["rate"] = float64(a.passes) / float64(a.count)
		}
		v["passes"] = float64(a.passes)
		v["fails"] = float64(a.count - a.passes)
	case Trend:
		v["avg"], v["min"], v["max"], v["med"] = 0, 0, 0, 0
		for _, p := range summaryPercentiles {
			v[p.key] = 0
		}
		if a.count > 0 {
			v["avg"] = a.sum / float64(a.count)
			v["min"] = a.min
			v["max"] = a.max
			v["med"] = pct(a, 50)
			for _, p := range summaryPercentiles {
				v[p.key] = pct(a, p.q)
			}
		}
	}
	return v
}

var summaryPercentiles = []struct {
	key string
	q   float64
}{{"p(90)", 90}, {"p(95)", 95}, {"p(99)", 99}, {"p(99.9)", 99.9}}

// pct is the q-th percentile of a trend in milliseconds, clamped into the
// exact [min, max] so the histogram's bucket rounding never reports a
// value no sample had.
func pct(a *agg, q float64) float64 {
	if a.count == 0 || a.hist == nil {
		return 0
	}
	v := float64(a.hist.ValueAtQuantile(q)) / 1000
	return math.Max(a.min, math.Min(a.max, v))
}

func histPct(h *hdr.Histogram, q float64) float64 {
	if h.TotalCount() == 0 {
		return 0
	}
	return float64(h.ValueAtQuantile(q)) / 1000
}
