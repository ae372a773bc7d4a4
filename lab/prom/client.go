package prom

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client queries a Prometheus HTTP API (/api/v1/query_range). It works
// against the lab's own Prometheus (Server embeds one) or any other URL.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:9090
	HTTP    *http.Client // nil means a client with a 30 s timeout
}

// Series is one result series of a range query.
type Series struct {
	Labels map[string]string
	Points []Point
}

// Point is one sample.
type Point struct {
	T time.Time
	V float64
}

// apiResponse is the envelope of every /api/v1 answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

type matrixData struct {
	ResultType string `json:"resultType"`
	Result     []struct {
		Metric map[string]string    `json:"metric"`
		Values [][2]json.RawMessage `json:"values"`
	} `json:"result"`
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// EvalRange evaluates expr over [start, end] every step. A step of 0 picks
// about 250 points (at least one second).
func (c *Client) EvalRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	if !end.After(start) {
		return nil, fmt.Errorf("eval range %q: end %s is not after start %s", expr, end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	if step <= 0 {
		step = max(end.Sub(start)/250, time.Second).Round(time.Second)
	}
	form := url.Values{
		"query": {expr},
		"start": {strconv.FormatFloat(float64(start.UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	var data matrixData
	if err := c.post(ctx, "/api/v1/query_range", form, &data); err != nil {
		return nil, fmt.Errorf("eval range %q: %w", expr, err)
	}
	if data.ResultType != "matrix" {
		return nil, fmt.Errorf("eval range %q: result type %q, want matrix", expr, data.ResultType)
	}
	out := make([]Series, 0, len(data.Result))
	for _, r := range data.Result {
		s := Series{Labels: r.Metric, Points: make([]Point, 0, len(r.Values))}
		for _, v := range r.Values {
			p, err := parsePoint(v)
			if err != nil {
				return nil, fmt.Errorf("eval range %q: %w", expr, err)
			}
			s.Points = append(s.Points, p)
		}
		out = append(out, s)
	}
	return out, nil
}

func parsePoint(v [2]json.RawMessage) (Point, error) {
	var ts float64
	var val string
	if err := json.Unmarshal(v[0], &ts); err != nil {
		return Point{}, fmt.Errorf("sample time %s: %w", v[0], err)
	}
	if err := json.Unmarshal(v[1], &val); err != nil {
		return Point{}, fmt.Errorf("sample value %s: %w", v[1], err)
	}
	f, err := strconv.ParseFloat(val, 64)
	if err != nil {
		return Point{}, fmt.Errorf("sample value %q: %w", val, err)
	}
	return Point{T: time.UnixMilli(int64(ts * 1000)), V: f}, nil
}

func (c *Client) post(ctx context.Context, path string, form url.Values, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	var ar apiResponse
	if err := json.Unmarshal(body, &ar); err != nil {
		return fmt.Errorf("HTTP %d, not a Prometheus API answer: %.200s", resp.StatusCode, body)
	}
	if ar.Status != "success" {
		return fmt.Errorf("prometheus %s: %s", ar.ErrorType, ar.Error)
	}
	return json.Unmarshal(ar.Data, into)
}

// ExprResult is the verdict on one expression over a time range.
type ExprResult struct {
	Expr
	Evaluated string // the PromQL actually sent: variables substituted, alert thresholds stripped
	Series    int    // series returned
	Err       error  // parse or evaluation error
}

// NoData says the expression evaluated fine but returned nothing.
func (r ExprResult) NoData() bool { return r.Err == nil && r.Series == 0 }

// CheckOptions tune CheckExpressions.
type CheckOptions struct {
	// Vars substitute Grafana variables; unset names fall back to
	// DefaultVars and ".*". Set "__rate_interval" to about 4 scrape
	// intervals for short lab runs (the default is "1m").
	Vars map[string]string
	Step time.Duration // 0: automatic
}

// CheckExpressions evaluates each expression over [start, end] and reports
// how many series it returned. Alert expressions are evaluated with their
// thresholds stripped (StripThresholds), so "no data" means the metrics are
// missing, not that the alert did not fire. Results come back in the input
// order; use NoData and Err to pick the failures.
func (c *Client) CheckExpressions(ctx context.Context, exprs []Expr, start, end time.Time, opts CheckOptions) []ExprResult {
	out := make([]ExprResult, 0, len(exprs))
	for _, e := range exprs {
		r := ExprResult{Expr: e, Evaluated: SubstituteVars(e.Expr, opts.Vars)}
		if e.Kind == KindAlert {
			s, err := StripThresholds(e.Expr, opts.Vars)
			if err != nil {
				r.Err = err
				out = append(out, r)
				continue
			}
			r.Evaluated = s
		}
		series, err := c.EvalRange(ctx, r.Evaluated, start, end, opts.Step)
		r.Series, r.Err = len(series), err
		out = append(out, r)
	}
	return out
}
