package prom

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Snapshot is one read of a /metrics endpoint: the lab's only parser of
// the text format (its servers, HAProxy's exporter, the tests').
type Snapshot struct {
	At       time.Time
	Families map[string]*dto.MetricFamily
}

// ReplicaLabel is the label AddReplica gives a server's series in a
// snapshot merged from several (see Delta).
const ReplicaLabel = "replica"

// Fetch reads url (a /metrics endpoint) in the text format.
func Fetch(ctx context.Context, client *http.Client, url string) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("scrape %s: status %d: %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: parse the text format: %w", url, err)
	}
	return &Snapshot{At: time.Now(), Families: fams}, nil
}

// Has tells whether the snapshot holds a metric family.
func (s *Snapshot) Has(name string) bool {
	if s == nil {
		return false
	}
	_, ok := s.Families[name]
	return ok
}

// Sum adds the values of every series of name whose labels match all of
// match (a label value "" matches any; "!x" anything but x; "a|b" a or b).
// Counters, gauges and untyped series give their value; histograms and
// summaries their sample count.
func (s *Snapshot) Sum(name string, match map[string]string) float64 {
	if s == nil || s.Families[name] == nil {
		return 0
	}
	var sum float64
	for _, m := range s.Families[name].GetMetric() {
		if labelsMatch(m.GetLabel(), match) {
			sum += value(m)
		}
	}
	return sum
}

// SumBy groups Sum by one label's values.
func (s *Snapshot) SumBy(name, label string, match map[string]string) map[string]float64 {
	out := map[string]float64{}
	if s == nil || s.Families[name] == nil {
		return out
	}
	for _, m := range s.Families[name].GetMetric() {
		if !labelsMatch(m.GetLabel(), match) {
			continue
		}
		var key string
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				key = l.GetValue()
			}
		}
		out[key] += value(m)
	}
	return out
}

// value is a series' value (a histogram's or summary's sample count).
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Summary != nil:
		return float64(m.GetSummary().GetSampleCount())
	}
	return 0
}

func labelsMatch(labels []*dto.LabelPair, match map[string]string) bool {
	for k, want := range match {
		var got string
		for _, l := range labels {
			if l.GetName() == k {
				got = l.GetValue()
			}
		}
		switch {
		case want == "":
		case strings.HasPrefix(want, "!"):
			if got == want[1:] {
				return false
			}
		case strings.Contains(want, "|"):
			if !slices.Contains(strings.Split(want, "|"), got) {
				return false
			}
		default:
			if got != want {
				return false
			}
		}
	}
	return true
}

// AddReplica adds src's series to s with the label replica=name: sums
// over a merged snapshot are the fleet's, sums by replica each server's.
func (s *Snapshot) AddReplica(src *Snapshot, name string) {
	if s.Families == nil {
		s.Families = map[string]*dto.MetricFamily{}
	}
	label := ReplicaLabel
	for fname, f := range src.Families {
		d := s.Families[fname]
		if d == nil {
			d = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type, Unit: f.Unit}
			s.Families[fname] = d
		}
		for _, m := range f.GetMetric() {
			labels := append(append([]*dto.LabelPair(nil), m.GetLabel()...), &dto.LabelPair{Name: &label, Value: &name})
			d.Metric = append(d.Metric, &dto.Metric{Label: labels, Counter: m.Counter, Gauge: m.Gauge, Untyped: m.Untyped,
				Histogram: m.Histogram, Summary: m.Summary, TimestampMs: m.TimestampMs})
		}
	}
}

// Delta is after − before of Sum; a counter reset (a server restarted)
// gives after's value. On snapshots merged from several replicas
// (AddReplica) it is taken per replica and added up, so one restarted
// replica resets only its own share.
func Delta(before, after *Snapshot, name string, match map[string]string) float64 {
	if _, one := match[ReplicaLabel]; !one {
		if reps := after.SumBy(name, ReplicaLabel, nil); len(reps) > 1 {
			var sum float64
			for r := range reps {
				m := map[string]string{ReplicaLabel: r}
				for k, v := range match {
					m[k] = v
				}
				sum += Delta(before, after, name, m)
			}
			return sum
		}
	}
	a, b := after.Sum(name, match), before.Sum(name, match)
	if a < b {
		return a
	}
	return a - b
}
