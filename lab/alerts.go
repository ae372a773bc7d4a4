package lab

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"gopkg.in/yaml.v3"
)

// alertSpans reads which alerts fired from the start of the first fault
// (minus a minute) to now, waiting until 30 s after the last heal so the
// last fault's alert has had its time.
func (s *session) alertSpans(ctx context.Context, recs []faults.Record) []faults.AlertSpan {
	var from, last time.Time
	for _, r := range recs {
		if r.Injected.IsZero() {
			continue
		}
		if from.IsZero() || r.Injected.Before(from) {
			from = r.Injected
		}
		if r.Healed.After(last) {
			last = r.Healed
		}
	}
	if from.IsZero() {
		return []faults.AlertSpan{}
	}
	if d := time.Until(last.Add(30 * time.Second)); d > 0 {
		_ = load.Sleep(ctx, d)
	}
	series, err := s.side.prom.EvalRange(context.WithoutCancel(ctx), `ALERTS{alertstate="firing"}`, from.Add(-time.Minute), time.Now(), time.Second)
	if err != nil {
		s.labError("--prometheus: read the alerts that fired: %v", err)
		return nil
	}
	spans := []faults.AlertSpan{}
	for _, ser := range series {
		var cur *faults.AlertSpan
		for _, p := range ser.Points {
			if cur != nil && p.T.Sub(cur.To) <= 3*time.Second {
				cur.To = p.T
				continue
			}
			if cur != nil {
				spans = append(spans, *cur)
			}
			cur = &faults.AlertSpan{Name: ser.Labels["alertname"], From: p.T, To: p.T}
		}
		if cur != nil {
			spans = append(spans, *cur)
		}
	}
	return spans
}

// alertFor reads each alert's for: from root/alerts/*.rules.yml.
func alertFor(root string) map[string]time.Duration {
	out := map[string]time.Duration{}
	files, _ := filepath.Glob(filepath.Join(root, "alerts", "*.rules.yml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var doc struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
					For   string `yaml:"for"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if yaml.Unmarshal(b, &doc) != nil {
			continue
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					d, _ := time.ParseDuration(r.For)
					out[r.Alert] = d
				}
			}
		}
	}
	return out
}
