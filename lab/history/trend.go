package history

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/report"
)

// TrendFile is the page `hal9-lab history report` writes.
const TrendFile = "trend.html"

//go:embed trend.html.tmpl
var trendTemplate string

//go:embed trend.js
var trendJS string

// trendSeries is one chart's data for trend.js.
type trendSeries struct {
	ID      string `json:"id"`
	Profile string `json:"profile"`
	Key
	Kind   Kind          `json:"kind"`
	Group  string        `json:"group"`
	Unit   string        `json:"unit"`
	Judged bool          `json:"judged"`
	Pts    [][3]any      `json:"pts"` // [unix ms, value, commit]
	CPs    []ChangePoint `json:"cps"`
}

// Trend renders trend.html: one self-contained page (no network), each
// series over time with its change points and the commit range before
// each marked, grouped by profile, leg and scenario, and op; drawn by the
// chart code report.html uses (report.ChartLib).
func Trend(r Result, source string) ([]byte, error) {
	t, err := template.New("trend").Funcs(template.FuncMap{
		"pct":   func(v float64) string { return fmt.Sprintf("%+.1f%%", 100*v) },
		"num":   func(v float64) string { return fmt.Sprintf("%.4g", v) },
		"short": ShortCommit,
		"day":   func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"id":    func(c ChangePoint) string { return seriesAnchor(c.SeriesID) },
		"op": func(op string) string {
			if op == "" {
				return "all"
			}
			return op
		},
	}).Parse(trendTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse trend template: %w", err)
	}
	byID := map[SeriesID][]ChangePoint{}
	for _, c := range r.ChangePoints {
		byID[c.SeriesID] = append(byID[c.SeriesID], c)
	}
	sorted := slices.Clone(r.Series)
	slices.SortStableFunc(sorted, func(a, b Series) int { return compareIDs(a.SeriesID, b.SeriesID) })
	series := make([]trendSeries, 0, len(sorted))
	for _, s := range sorted {
		ts := trendSeries{ID: seriesAnchor(s.SeriesID), Profile: s.Profile, Key: s.Key, Kind: s.Kind, Group: s.Group,
			Unit: s.Unit, Judged: s.Judged, CPs: byID[s.SeriesID]}
		for _, p := range s.Points {
			ts.Pts = append(ts.Pts, [3]any{p.Time.UnixMilli(), p.Value, ShortCommit(p.Commit)})
		}
		series = append(series, ts)
	}
	data, err := json.Marshal(map[string]any{"series": series, "window": r.Window})
	if err != nil {
		return nil, fmt.Errorf("encode trend data: %w", err)
	}
	var regressions, others []ChangePoint
	for _, c := range r.ChangePoints {
		if c.InWindow && c.Direction == Regression {
			regressions = append(regressions, c)
		} else {
			others = append(others, c)
		}
	}
	var buf bytes.Buffer
	err = t.Execute(&buf, map[string]any{
		"R": r, "Source": source, "Generated": time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		"Regressions": regressions, "Others": others,
		"Data": template.JS(data), "Lib": report.ChartLib(), "Script": template.JS(trendJS),
	})
	if err != nil {
		return nil, fmt.Errorf("render trend.html: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteTrend writes dir/trend.html and returns its path.
func WriteTrend(dir string, r Result, source string) (string, error) {
	page, err := Trend(r, source)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	p := filepath.Join(dir, TrendFile)
	if err := os.WriteFile(p, page, 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	return p, nil
}

// seriesAnchor is a series' element id on the page.
func seriesAnchor(id SeriesID) string {
	return "s-" + runID(id.Profile, id.Key.String(), string(id.Kind), id.Group)
}

// ShortCommit is a commit hash cut to 10 characters for people.
func ShortCommit(c string) string {
	if len(c) > 10 {
		return c[:10]
	}
	return c
}
