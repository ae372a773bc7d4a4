package load

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Summary is k6's handleSummary data: metrics with their values and
// threshold results, the root group's checks, the run state; times in
// milliseconds. Our additions live under "hal9lab".
type Summary struct {
	RootGroup Group                     `json:"root_group"`
	Options   SummaryOptions            `json:"options"`
	State     SummaryState              `json:"state"`
	Metrics   map[string]*SummaryMetric `json:"metrics"`
	Hal9Lab   *Hal9Lab                  `json:"hal9lab,omitempty"`
}

// Group is k6's group (only the root group: this engine has no groups).
type Group struct {
	Name   string  `json:"name"`
	Path   string  `json:"path"`
	ID     string  `json:"id"`
	Groups []Group `json:"groups"`
	Checks []Check `json:"checks"`
}

// Check is one named check's tally.
type Check struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	ID     string `json:"id"`
	Passes int64  `json:"passes"`
	Fails  int64  `json:"fails"`
}

// SummaryOptions mirrors k6's.
type SummaryOptions struct {
	SummaryTrendStats []string `json:"summaryTrendStats"`
	SummaryTimeUnit   string   `json:"summaryTimeUnit"`
	NoColor           bool     `json:"noColor"`
}

// SummaryState mirrors k6's.
type SummaryState struct {
	IsStdOutTTY       bool    `json:"isStdOutTTY"`
	IsStdErrTTY       bool    `json:"isStdErrTTY"`
	TestRunDurationMs float64 `json:"testRunDurationMs"`
}

// SummaryMetric is one metric (or sub-metric, keyed "name{tag:value}").
type SummaryMetric struct {
	Type       string                    `json:"type"`
	Contains   string                    `json:"contains"`
	Values     map[string]float64        `json:"values"`
	Thresholds map[string]ThresholdState `json:"thresholds,omitempty"`
}

// ThresholdState is k6's {"ok": bool}.
type ThresholdState struct {
	OK bool `json:"ok"`
}

// Hal9Lab is what this engine adds to k6's summary.
type Hal9Lab struct {
	Name     string    `json:"name,omitempty"`
	Target   string    `json:"target,omitempty"`
	Segment  string    `json:"segment,omitempty"`
	Segments int       `json:"segments,omitempty"` // how many segment summaries were merged
	Scale    float64   `json:"scale,omitempty"`
	Started  time.Time `json:"started"`
	// StartAt is the agreed start of a distributed test's segments
	// (hal9-lab load --start-at); Started is when this run actually began.
	StartAt *time.Time `json:"start_at,omitempty"`
	// StartSkewMs is, in a merged summary, the spread of the segments'
	// actual starts (latest − earliest), and SegmentStarts lists them.
	StartSkewMs   *float64                 `json:"start_skew_ms,omitempty"`
	SegmentStarts []SegmentStart           `json:"segment_starts,omitempty"`
	ThresholdsOK  bool                     `json:"thresholds_ok"`
	Thresholds    []ThresholdResult        `json:"thresholds"`
	Aborted       bool                     `json:"aborted,omitempty"`
	AbortReason   string                   `json:"abort_reason,omitempty"`
	Warnings      []string                 `json:"warnings"`
	Scenarios     map[string]ScenarioStats `json:"scenarios"`
	TimeSeries    []Point                  `json:"timeseries"`
	// Ops are the per-operation (and per-layer) numbers, also in Metrics
	// as k6 sub-metrics (ops.go).
	Ops []OpStats `json:"ops,omitempty"`
	Raw *Raw      `json:"raw,omitempty"`
}

// SegmentStart is when one merged segment began.
type SegmentStart struct {
	Segment string    `json:"segment"`
	Started time.Time `json:"started"`
	// LateMs is Started − StartAt when the segment had a --start-at.
	LateMs *float64 `json:"late_ms,omitempty"`
}

// ScenarioStats compares a scenario's plan with what happened.
type ScenarioStats struct {
	Executor          string  `json:"executor"`
	DurationMs        float64 `json:"duration_ms"` // startTime excluded, gracefulStop excluded
	PlannedIterations int64   `json:"planned_iterations,omitempty"`
	PlannedRate       float64 `json:"planned_rate,omitempty"` // iterations/s (open model)
	Started           int64   `json:"started"`
	Completed         int64   `json:"completed"`
	Dropped           int64   `json:"dropped"`
	Interrupted       int64   `json:"interrupted"`
	Errors            int64   `json:"errors"` // iterations that returned an error
	AchievedRate      float64 `json:"achieved_rate"`
	MaxVUs            int     `json:"max_vus"`
}

// Raw is the exact, mergeable state behind a summary: every series with
// its histogram (HdrHistogram V2 compressed, base64), and the thresholds.
type Raw struct {
	Metrics    []RawMetric `json:"metrics"`
	Series     []RawSeries `json:"series"`
	Thresholds []Threshold `json:"thresholds"`
	DurationMs float64     `json:"duration_ms"`
}

// RawMetric is a metric's definition.
type RawMetric struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Contains string `json:"contains"`
}

// RawSeries is one series' aggregate.
type RawSeries struct {
	Metric string            `json:"metric"`
	Tags   map[string]string `json:"tags,omitempty"`
	Count  int64             `json:"count"`
	Sum    float64           `json:"sum"`
	Min    *float64          `json:"min,omitempty"`
	Max    *float64          `json:"max,omitempty"`
	Passes int64             `json:"passes,omitempty"`
	Hist   string            `json:"hist,omitempty"`
}

var trendStats = []string{"avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "p(99.9)"}

// build assembles the k6-shaped summary of a state and evaluates the
// thresholds.
func build(st *state, ths []*compiled, dur time.Duration, lab *Hal9Lab) *Summary {
	s := &Summary{
		RootGroup: Group{Name: "", Path: "", ID: md5hex(""), Groups: []Group{}, Checks: []Check{}},
		Options:   SummaryOptions{SummaryTrendStats: trendStats, SummaryTimeUnit: ""},
		State:     SummaryState{TestRunDurationMs: ms(dur)},
		Metrics:   map[string]*SummaryMetric{},
		Hal9Lab:   lab,
	}
	for name, m := range st.metrics {
		a, _ := st.selectAgg(name, nil)
		if a.count == 0 && !referenced(ths, name) {
			continue
		}
		s.Metrics[name] = &SummaryMetric{Type: m.Type.String(), Contains: m.Contains.String(), Values: values(m, a, dur)}
	}
	lab.Ops = st.ops()
	st.addOpMetrics(s, lab.Ops, dur)
	lab.ThresholdsOK = true
	lab.Thresholds = lab.Thresholds[:0]
	for _, c := range ths {
		r := c.evaluate(st, dur)
		lab.Thresholds = append(lab.Thresholds, r)
		if !r.OK {
			lab.ThresholdsOK = false
		}
		sm := s.Metrics[c.Metric]
		if sm == nil {
			m := st.metrics[c.name]
			if m == nil {
				continue
			}
			a, _ := st.selectAgg(c.name, c.filter)
			sm = &SummaryMetric{Type: m.Type.String(), Contains: m.Contains.String(), Values: values(m, a, dur)}
			s.Metrics[c.Metric] = sm
		}
		if sm.Thresholds == nil {
			sm.Thresholds = map[string]ThresholdState{}
		}
		prev, seen := sm.Thresholds[c.Expr]
		sm.Thresholds[c.Expr] = ThresholdState{OK: r.OK && (!seen || prev.OK)}
	}
	// checks, by name, in name order
	byName := map[string]*Check{}
	for k, a := range st.series {
		if k.metric != MetricChecks {
			continue
		}
		c := byName[k.tags.Check]
		if c == nil {
			c = &Check{Name: k.tags.Check, Path: "::" + k.tags.Check, ID: md5hex("::" + k.tags.Check)}
			byName[k.tags.Check] = c
		}
		c.Passes += a.passes
		c.Fails += a.count - a.passes
	}
	for _, n := range slices.Sorted(maps.Keys(byName)) {
		s.RootGroup.Checks = append(s.RootGroup.Checks, *byName[n])
	}
	raw := st.raw(dur)
	raw.Thresholds = make([]Threshold, len(ths))
	for i, c := range ths {
		raw.Thresholds[i] = c.Threshold
	}
	lab.Raw = raw
	return s
}

func referenced(ths []*compiled, name string) bool {
	for _, c := range ths {
		if c.name == name {
			return true
		}
	}
	return false
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func (st *state) raw(dur time.Duration) *Raw {
	r := &Raw{DurationMs: ms(dur)}
	for _, n := range slices.Sorted(maps.Keys(st.metrics)) {
		m := st.metrics[n]
		r.Metrics = append(r.Metrics, RawMetric{Name: m.Name, Type: m.Type.String(), Contains: m.Contains.String()})
	}
	for k, a := range st.series {
		rs := RawSeries{Metric: k.metric, Count: a.count, Sum: a.sum, Passes: a.passes}
		if t := k.tags.toMap(); len(t) > 0 {
			rs.Tags = t
		}
		if !math.IsInf(a.min, 0) {
			v := a.min
			rs.Min = &v
		}
		if !math.IsInf(a.max, 0) {
			v := a.max
			rs.Max = &v
		}
		if a.hist != nil && a.hist.TotalCount() > 0 {
			b, err := a.hist.Encode(hdr.V2CompressedEncodingCookieBase)
			if err == nil {
				rs.Hist = base64.StdEncoding.EncodeToString(b)
			}
		}
		r.Series = append(r.Series, rs)
	}
	sort.Slice(r.Series, func(i, j int) bool {
		a, b := r.Series[i], r.Series[j]
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		return fmt.Sprint(a.Tags) < fmt.Sprint(b.Tags)
	})
	return r
}

// addRaw folds a raw state into st (segments: gauges add up).
func (st *state) addRaw(r *Raw) error {
	defs := map[string]*Metric{}
	for _, rm := range r.Metrics {
		t, err := parseMetricType(rm.Type)
		if err != nil {
			return fmt.Errorf("metric %s: %w", rm.Name, err)
		}
		m := &Metric{Name: rm.Name, Type: t, Contains: parseValueType(rm.Contains)}
		if cur := st.metrics[rm.Name]; cur != nil && cur.Type != t {
			return fmt.Errorf("metric %s is a %s in one summary and a %s in another", rm.Name, cur.Type, t)
		}
		defs[rm.Name] = m
	}
	for _, rs := range r.Series {
		m := defs[rs.Metric]
		if m == nil {
			return fmt.Errorf("series of undefined metric %q", rs.Metric)
		}
		var tags Tags
		for k, v := range rs.Tags {
			if !tags.set(k, v) {
				return fmt.Errorf("series of %s: unknown tag %q", rs.Metric, k)
			}
		}
		a := &agg{count: rs.Count, sum: rs.Sum, passes: rs.Passes, min: math.Inf(1), max: math.Inf(-1)}
		if rs.Min != nil {
			a.min = *rs.Min
		}
		if rs.Max != nil {
			a.max = *rs.Max
		}
		if m.Type == Trend {
			a.hist = newHist()
			if rs.Hist != "" {
				b, err := base64.StdEncoding.DecodeString(rs.Hist)
				if err != nil {
					return fmt.Errorf("series of %s: histogram: %w", rs.Metric, err)
				}
				h, err := hdr.Decode(b)
				if err != nil {
					return fmt.Errorf("series of %s: histogram: %w", rs.Metric, err)
				}
				a.hist = h
			}
		}
		st.addSeries(m, tags, a, true)
	}
	return nil
}

// MergeSummaries merges the summaries of the segments of one test (each
// run with --segment i/n) into the summary a single run would have given:
// counters, rates and histograms merge exactly (from the raw state each
// summary carries), thresholds are evaluated again on the merged data,
// gauges (vus) add up, the duration is the longest segment's, and the
// time series adds the segments' counts second by second (its per-second
// percentiles are the largest segment's: percentiles of a second do not
// merge, the overall ones do).
func MergeSummaries(sums ...*Summary) (*Summary, error) {
	if len(sums) == 0 {
		return nil, errors.New("merge summaries: none given")
	}
	st := newState()
	var durMs float64
	var ths []Threshold
	lab := &Hal9Lab{Scenarios: map[string]ScenarioStats{}, Warnings: []string{}}
	series := map[int64]*Point{}
	rateN := map[int64]map[string]float64{} // segments contributing to a per-second custom rate
	seen := map[string]int{}                // segment "i/n" → summary number
	for i, s := range sums {
		if s == nil || s.Hal9Lab == nil || s.Hal9Lab.Raw == nil {
			return nil, fmt.Errorf("merge summaries: summary %d has no hal9lab.raw section (was it written by hal9-lab load?)", i+1)
		}
		h := s.Hal9Lab
		if h.Segment != "" {
			if j, dup := seen[h.Segment]; dup {
				return nil, fmt.Errorf("merge summaries: summaries %d and %d are both segment %s; merging a segment twice counts its load twice", j, i+1, h.Segment)
			}
			seen[h.Segment] = i + 1
		}
		ss := SegmentStart{Segment: h.Segment, Started: h.Started}
		if h.StartAt != nil {
			late := float64(h.Started.Sub(*h.StartAt)) / float64(time.Millisecond)
			ss.LateMs = &late
			switch {
			case lab.StartAt == nil:
				at := *h.StartAt
				lab.StartAt = &at
			case !lab.StartAt.Equal(*h.StartAt):
				lab.Warnings = append(lab.Warnings, fmt.Sprintf("segment %s was given --start-at %s, another %s: the segments did not share one start",
					h.Segment, h.StartAt.UTC().Format(time.RFC3339Nano), lab.StartAt.UTC().Format(time.RFC3339Nano)))
			}
		}
		lab.SegmentStarts = append(lab.SegmentStarts, ss)
		if err := st.addRaw(h.Raw); err != nil {
			return nil, fmt.Errorf("merge summaries: summary %d: %w", i+1, err)
		}
		durMs = math.Max(durMs, h.Raw.DurationMs)
		if i == 0 {
			ths = h.Raw.Thresholds
			lab.Name, lab.Target, lab.Scale, lab.Started = h.Name, h.Target, h.Scale, h.Started
		} else if h.Started.Before(lab.Started) {
			lab.Started = h.Started
		}
		lab.Aborted = lab.Aborted || h.Aborted
		if h.AbortReason != "" && lab.AbortReason == "" {
			lab.AbortReason = h.AbortReason
		}
		lab.Warnings = append(lab.Warnings, h.Warnings...)
		for name, sc := range h.Scenarios {
			cur, ok := lab.Scenarios[name]
			if !ok {
				lab.Scenarios[name] = sc
				continue
			}
			cur.PlannedIterations += sc.PlannedIterations
			cur.PlannedRate += sc.PlannedRate
			cur.Started += sc.Started
			cur.Completed += sc.Completed
			cur.Dropped += sc.Dropped
			cur.Interrupted += sc.Interrupted
			cur.Errors += sc.Errors
			cur.AchievedRate += sc.AchievedRate
			cur.MaxVUs += sc.MaxVUs
			cur.DurationMs = math.Max(cur.DurationMs, sc.DurationMs)
			lab.Scenarios[name] = cur
		}
		for _, p := range h.TimeSeries {
			if rateN[p.T] == nil {
				rateN[p.T] = map[string]float64{}
			}
			for k := range p.Custom {
				rateN[p.T][k]++
			}
			cur := series[p.T]
			if cur == nil {
				c := p
				c.Custom = make(map[string]float64, len(p.Custom)) // not nil: the next segments add to it
				maps.Copy(c.Custom, p.Custom)
				series[p.T] = &c
				continue
			}
			cur.Reqs += p.Reqs
			cur.Errors += p.Errors
			cur.Iterations += p.Iterations
			cur.Dropped += p.Dropped
			cur.Planned += p.Planned
			cur.VUs += p.VUs
			cur.P50, cur.P95, cur.P99 = math.Max(cur.P50, p.P50), math.Max(cur.P95, p.P95), math.Max(cur.P99, p.P99)
			cur.IRTP50, cur.IRTP99 = math.Max(cur.IRTP50, p.IRTP50), math.Max(cur.IRTP99, p.IRTP99)
			for k, v := range p.Custom {
				cur.Custom[k] += v // counters add; rates are averaged below
			}
		}
	}
	cs, err := compileAll(ths, st.metrics)
	if err != nil {
		return nil, fmt.Errorf("merge summaries: %w", err)
	}
	for _, t := range slices.Sorted(maps.Keys(series)) {
		p := series[t]
		for k := range p.Custom {
			if m := st.metrics[k]; m != nil && m.Type == Rate && rateN[t][k] > 1 {
				p.Custom[k] /= rateN[t][k] // the segments' mean share (their weights are not kept)
			}
		}
		lab.TimeSeries = append(lab.TimeSeries, *p)
	}
	lab.Segments = len(sums)
	first, last := lab.SegmentStarts[0].Started, lab.SegmentStarts[0].Started
	for _, ss := range lab.SegmentStarts {
		if ss.Started.Before(first) {
			first = ss.Started
		}
		if ss.Started.After(last) {
			last = ss.Started
		}
	}
	skew := float64(last.Sub(first)) / float64(time.Millisecond)
	lab.StartSkewMs = &skew
	sort.SliceStable(lab.SegmentStarts, func(i, j int) bool { return segmentLess(lab.SegmentStarts[i].Segment, lab.SegmentStarts[j].Segment) })
	dur := time.Duration(durMs * float64(time.Millisecond))
	return build(st, cs, dur, lab), nil
}

// segmentLess orders "i/n" by i (2/10 before 10/10).
func segmentLess(a, b string) bool {
	ga, ea := ParseSegment(a)
	gb, eb := ParseSegment(b)
	if ea != nil || eb != nil {
		return a < b
	}
	return ga.Index < gb.Index
}

// CheckSegments reports whether sums are exactly the segments 1/n … n/n of
// one test, each once (what hal9-lab load merge --expect n requires).
func CheckSegments(sums []*Summary, n int) error {
	if len(sums) != n {
		return fmt.Errorf("%d summaries for %d segments", len(sums), n)
	}
	have := make([]bool, n+1)
	for i, s := range sums {
		if s == nil || s.Hal9Lab == nil {
			return fmt.Errorf("summary %d has no hal9lab section", i+1)
		}
		g, err := ParseSegment(s.Hal9Lab.Segment)
		switch {
		case err != nil:
			return fmt.Errorf("summary %d: %w", i+1, err)
		case n > 1 && g.Count != n, n == 1 && g.Count > 1:
			return fmt.Errorf("summary %d is segment %q, not one of %d segments", i+1, s.Hal9Lab.Segment, n)
		}
		idx := max(g.Index, 1)
		if have[idx] {
			return fmt.Errorf("segment %d/%d appears twice", idx, n)
		}
		have[idx] = true
	}
	return nil
}

// ReadSummary reads a summary JSON file.
func ReadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read summary %s: %w", path, err)
	}
	return &s, nil
}

// WriteSummary writes the summary as indented JSON, atomically (a temporary
// file renamed into place): a reader waiting for it, such as hal9-lab load
// merge --wait on a shared volume, never sees half a file.
func WriteSummary(path string, s *Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".summary-*.json")
	if err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write summary %s: %w", path, err)
	}
	return nil
}
