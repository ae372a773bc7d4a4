package profiles

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// IngestRequest is the query string of POST /ingest.
type IngestRequest struct {
	Name            string            // as sent: app{k=v,...}
	App             string            // the part before {
	Tags            map[string]string // the labels inside {}
	From, Until     time.Time
	SpyName         string
	SampleRate      int
	Units           string
	AggregationType string
}

// ParseIngestQuery validates the ingest query parameters. from and until
// are Unix timestamps; their unit is told by magnitude (pyroscope-go sends
// nanoseconds, older agents seconds; milli- and microseconds work too).
func ParseIngestQuery(q url.Values) (IngestRequest, error) {
	var r IngestRequest
	r.Name = strings.TrimSpace(q.Get("name"))
	if r.Name == "" {
		return r, fmt.Errorf("query parameter name is required: the application name, optionally with tags, e.g. name=hal9{leg=sqlite}")
	}
	app, tags, err := parseName(r.Name)
	if err != nil {
		return r, err
	}
	r.App, r.Tags = app, tags
	if r.From, err = parseTime("from", q.Get("from")); err != nil {
		return r, err
	}
	if r.Until, err = parseTime("until", q.Get("until")); err != nil {
		return r, err
	}
	if r.Until.Before(r.From) {
		return r, fmt.Errorf("query parameter until (%s) is before from (%s): until must not precede from",
			r.Until.UTC().Format(time.RFC3339Nano), r.From.UTC().Format(time.RFC3339Nano))
	}
	if s := q.Get("sampleRate"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return r, fmt.Errorf("query parameter sampleRate=%q: want a non-negative integer (samples per second, e.g. 100)", s)
		}
		r.SampleRate = n
	}
	r.SpyName = q.Get("spyName")
	r.Units = q.Get("units")
	r.AggregationType = q.Get("aggregationType")
	switch r.AggregationType {
	case "", "sum", "average":
	default:
		return r, fmt.Errorf("query parameter aggregationType=%q: want sum or average", r.AggregationType)
	}
	return r, nil
}

// parseTime reads a Unix timestamp in s, ms, µs or ns (told by magnitude).
// A missing value is an error: every client sends both bounds.
func parseTime(param, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("query parameter %s is required: a Unix timestamp in seconds or nanoseconds", param)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("query parameter %s=%q: want a Unix timestamp in seconds (1700000000) or nanoseconds (1700000000000000000)", param, s)
	}
	switch {
	case n < 1e11: // seconds: up to year 5138
		return time.Unix(n, 0), nil
	case n < 1e14:
		return time.UnixMilli(n), nil
	case n < 1e17:
		return time.UnixMicro(n), nil
	default:
		return time.Unix(0, n), nil
	}
}

// parseName splits "app{k=v,k2=v2}" into the app and its tags.
func parseName(name string) (string, map[string]string, error) {
	tags := map[string]string{}
	open := strings.IndexByte(name, '{')
	if open < 0 {
		return name, tags, nil
	}
	app := strings.TrimSpace(name[:open])
	rest := name[open+1:]
	if !strings.HasSuffix(rest, "}") {
		return "", nil, fmt.Errorf("query parameter name=%q: tags must be closed with }, e.g. app{k=v}", name)
	}
	rest = strings.TrimSuffix(rest, "}")
	if strings.TrimSpace(rest) == "" {
		return app, tags, nil
	}
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return "", nil, fmt.Errorf("query parameter name=%q: tag %q is not key=value", name, kv)
		}
		tags[k] = strings.TrimSpace(v)
	}
	return app, tags, nil
}
