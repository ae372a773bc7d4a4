package load

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// WriteText prints the summary for people, in k6's end-of-test style:
// checks, thresholds (✓/✗) and every metric, then this engine's notes.
func WriteText(w io.Writer, s *Summary) error {
	var b strings.Builder
	if len(s.RootGroup.Checks) > 0 {
		b.WriteString("\n  checks\n")
		for _, c := range s.RootGroup.Checks {
			mark := "✓"
			if c.Fails > 0 {
				mark = "✗"
			}
			share := 100.0
			if c.Passes+c.Fails > 0 {
				share = 100 * float64(c.Passes) / float64(c.Passes+c.Fails)
			}
			fmt.Fprintf(&b, "    %s %s  %.2f%% (%d/%d)\n", mark, c.Name, share, c.Passes, c.Passes+c.Fails)
		}
	}
	names := make([]string, 0, len(s.Metrics))
	width := 0
	for n := range s.Metrics {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	b.WriteString("\n")
	for _, n := range names {
		m := s.Metrics[n]
		mark := " "
		if len(m.Thresholds) > 0 {
			mark = "✓"
			for _, t := range m.Thresholds {
				if !t.OK {
					mark = "✗"
				}
			}
		}
		fmt.Fprintf(&b, "  %s %s%s: %s\n", mark, n, strings.Repeat(".", width+2-len(n)), formatValues(m))
		for _, e := range slices.Sorted(maps.Keys(m.Thresholds)) {
			r := "✓"
			if !m.Thresholds[e].OK {
				r = "✗"
			}
			fmt.Fprintf(&b, "      %s %s\n", r, e)
		}
	}
	if h := s.Hal9Lab; h != nil {
		fmt.Fprintf(&b, "\n  duration %.1fs", s.State.TestRunDurationMs/1000)
		if h.Segment != "" {
			fmt.Fprintf(&b, ", segment %s", h.Segment)
		}
		if h.Segments > 1 {
			fmt.Fprintf(&b, ", %d segments merged", h.Segments)
		}
		b.WriteString("\n")
		writeStarts(&b, h)
		for _, n := range slices.Sorted(maps.Keys(h.Scenarios)) {
			sc := h.Scenarios[n]
			fmt.Fprintf(&b, "  scenario %s (%s): %d iterations", n, sc.Executor, sc.Completed)
			if sc.PlannedIterations > 0 {
				fmt.Fprintf(&b, ", planned %d at %.4g/s, started %.4g/s, dropped %d", sc.PlannedIterations, sc.PlannedRate, sc.AchievedRate, sc.Dropped)
			}
			if sc.Interrupted > 0 {
				fmt.Fprintf(&b, ", interrupted %d", sc.Interrupted)
			}
			b.WriteString("\n")
		}
		for _, wn := range h.Warnings {
			fmt.Fprintf(&b, "  WARNING: %s\n", wn)
		}
		if h.ThresholdsOK {
			b.WriteString("  thresholds: all passed\n")
		} else {
			b.WriteString("  thresholds: FAILED\n")
			for _, t := range h.Thresholds {
				if t.Message != "" {
					fmt.Fprintf(&b, "    ✗ %s %s: %s\n", t.Metric, t.Expr, t.Message)
				}
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatValues(m *SummaryMetric) string {
	v := m.Values
	f := func(x float64) string {
		switch m.Contains {
		case "time":
			return fmtDur(x)
		case "data":
			return fmtBytes(x)
		}
		return fmt.Sprintf("%.6g", x)
	}
	switch m.Type {
	case "trend":
		var parts []string
		for _, k := range trendStats {
			parts = append(parts, k+"="+f(v[k]))
		}
		return strings.Join(parts, " ")
	case "counter":
		if m.Contains == "data" {
			return fmt.Sprintf("%s %s/s", f(v["count"]), f(v["rate"]))
		}
		return fmt.Sprintf("%.6g %.6g/s", v["count"], v["rate"])
	case "rate":
		return fmt.Sprintf("%.2f%% ✓ %.0f ✗ %.0f", 100*v["rate"], v["passes"], v["fails"])
	case "gauge":
		return fmt.Sprintf("%.6g min=%.6g max=%.6g", v["value"], v["min"], v["max"])
	}
	return ""
}

func fmtDur(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 1:
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.0fµs", ms*1000)
}

func fmtBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f kB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// writeStarts says when the run began against its agreed --start-at and,
// for merged segments, how far apart their starts were.
func writeStarts(b *strings.Builder, h *Hal9Lab) {
	const layout = "2006-01-02T15:04:05.000Z07:00"
	if h.StartSkewMs != nil && h.Segments > 1 {
		fmt.Fprintf(b, "  start skew %.1f ms across %d segments", *h.StartSkewMs, h.Segments)
		if h.StartAt != nil {
			fmt.Fprintf(b, " (agreed start %s", h.StartAt.UTC().Format(layout))
			late := 0.0
			for _, s := range h.SegmentStarts {
				if s.LateMs != nil && *s.LateMs > late {
					late = *s.LateMs
				}
			}
			fmt.Fprintf(b, ", latest segment %.1f ms after it)", late)
		}
		b.WriteString("\n")
		return
	}
	if h.StartAt != nil {
		fmt.Fprintf(b, "  started %s, %.1f ms after the agreed start %s\n", h.Started.UTC().Format(layout),
			float64(h.Started.Sub(*h.StartAt))/float64(time.Millisecond), h.StartAt.UTC().Format(layout))
	}
}
