package history

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CSV columns: the required ones, then the optional ones.
var (
	csvRequired = []string{"time", "commit", "machine", "leg", "scenario", "metric", "value"}
	csvOptional = []string{"profile", "op"}
)

// timeLayouts are the time formats a CSV may use (no zone: UTC).
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"}

// ReadCSV reads histories from elsewhere (and synthetic ones): a header
// naming the columns time, commit, machine, leg, scenario, metric, value
// and optionally profile and op, in any order, then one value a row. Rows
// that share time, commit, machine and profile are one run; several rows of
// one series in a run are its repetitions. Errors name the line.
func ReadCSV(r io.Reader, name string) ([]Run, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file: want a header line %s", name, strings.Join(csvRequired, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(csvRequired, h) && !slices.Contains(csvOptional, h) {
			return nil, fmt.Errorf("%s line 1: unknown column %q: the columns are %s, and optionally %s",
				name, h, strings.Join(csvRequired, ","), strings.Join(csvOptional, ","))
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("%s line 1: column %q twice", name, h)
		}
		col[h] = i
	}
	var missing []string
	for _, h := range csvRequired {
		if _, ok := col[h]; !ok {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s line 1: missing column(s) %s: the header must name %s (optional: %s)",
			name, strings.Join(missing, ", "), strings.Join(csvRequired, ","), strings.Join(csvOptional, ","))
	}
	get := func(rec []string, c string) string {
		if i, ok := col[c]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	runs := map[string]*Run{}
	var order []string
	reps := map[string]int{} // run and series → repetitions seen
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err) // csv.ParseError names the line
		}
		line, _ := cr.FieldPos(0)
		t, err := parseTime(get(rec, "time"))
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		k := Key{Leg: get(rec, "leg"), Scenario: get(rec, "scenario"), Op: get(rec, "op"), Metric: get(rec, "metric")}
		for _, f := range []struct{ name, v string }{{"leg", k.Leg}, {"scenario", k.Scenario}, {"metric", k.Metric}} {
			if f.v == "" {
				return nil, fmt.Errorf("%s line %d: empty %s: every row names its leg, scenario and metric", name, line, f.name)
			}
		}
		raw := get(rec, "value")
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || !isFinite(v) {
			return nil, fmt.Errorf("%s line %d: value %q: want a finite number (e.g. 412.5)", name, line, raw)
		}
		commit, machine, profile := get(rec, "commit"), get(rec, "machine"), get(rec, "profile")
		id := runID("csv", profile, t.Format(time.RFC3339Nano), commit, machine)
		run := runs[id]
		if run == nil {
			run = &Run{ID: id, Time: t, Commit: commit, Profile: profile, Command: "csv", Machine: machine, Source: name}
			runs[id] = run
			order = append(order, id)
		}
		sk := id + "\x00" + k.String()
		reps[sk]++
		run.Values = append(run.Values, Value{Key: k, Kind: Absolute, Repetition: reps[sk], Value: v})
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("%s: a header but no rows", name)
	}
	out := make([]Run, 0, len(order))
	for _, id := range order {
		out = append(out, *runs[id])
	}
	return out, nil
}

func parseTime(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-05-01T03:00:00Z) or a date (2026-05-01)", s)
}
