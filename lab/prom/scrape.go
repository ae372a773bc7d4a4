package prom

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Scrape fetches a /metrics URL in the text format and returns the series
// names it exports (ExportedNames).
func Scrape(ctx context.Context, url string) (map[string]bool, error) {
	snap, err := Fetch(ctx, http.DefaultClient, url)
	if err != nil {
		return nil, err
	}
	return ExportedNames(snap.Families), nil
}

// ExportedNames lists the series names metric families produce: a
// histogram "x" yields x_bucket, x_sum and x_count; a summary x, x_sum
// and x_count; others their own name.
func ExportedNames(fams map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, f := range fams {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name], out[name+"_sum"], out[name+"_count"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out
}

// Synthetic series Prometheus adds itself for every target.
var synthetic = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// MissingMetrics returns, for every metric name the expressions use that is
// neither exported, nor recorded by a rule, nor synthesized by Prometheus,
// the sources that use it. skip(name) true leaves a name out (e.g. the lab's
// hal9lab_* when only the server was scraped).
func MissingMetrics(exprs []Expr, exported, recorded map[string]bool, skip func(string) bool) (map[string][]string, error) {
	used, err := MetricsUsed(exprs, nil)
	if err != nil {
		return nil, err
	}
	missing := map[string][]string{}
	for name, srcs := range used {
		if exported[name] || recorded[name] || synthetic[name] || (skip != nil && skip(name)) {
			continue
		}
		missing[name] = srcs
	}
	return missing, nil
}

// FormatMissing renders MissingMetrics for a test failure or a report.
func FormatMissing(missing map[string][]string) string {
	names := make([]string, 0, len(missing))
	for n := range missing {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s, used by:\n", n)
		for _, s := range missing[n] {
			fmt.Fprintf(&b, "    %s\n", s)
		}
	}
	return b.String()
}
