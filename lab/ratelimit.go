package lab

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// rateLimitPath is an anonymous, rate-limited route: one client identity
// (the lab's IP) for every request.
const rateLimitPath = "/api/v1/status"

// rateLimitCounter counts, per scenario, the responses to GET
// rateLimitPath, the 429s and the 429s that carry a valid Retry-After.
type rateLimitCounter struct {
	mu     sync.Mutex
	counts map[string]*rlCount
}

type rlCount struct {
	Total, Limited, WithRetryAfter, Other int64
}

func newRateLimitCounter() *rateLimitCounter {
	return &rateLimitCounter{counts: map[string]*rlCount{}}
}

// iteration is every VU's (load.IterationFunc): one request, counted.
func (rl *rateLimitCounter) iteration(ctx context.Context, it *load.Iter) error {
	resp, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: rateLimitPath, Op: "ratelimit", Discard: true})
	if err != nil {
		return err
	}
	ra, raErr := strconv.Atoi(resp.Header.Get("Retry-After"))
	okRA := raErr == nil && ra >= 1
	rl.mu.Lock()
	c := rl.counts[it.Scenario]
	if c == nil {
		c = &rlCount{}
		rl.counts[it.Scenario] = c
	}
	c.Total++
	switch {
	case resp.Status == http.StatusTooManyRequests:
		c.Limited++
		if okRA {
			c.WithRetryAfter++
		}
	case resp.Status != http.StatusOK:
		c.Other++
	}
	rl.mu.Unlock()
	it.Check("429 carries Retry-After ≥ 1 s", resp.Status != http.StatusTooManyRequests || okRA)
	return nil
}

// RateLimitResult is the verdict of the rate-limit check.
type RateLimitResult struct {
	Limit     float64 `json:"limit"` // the client's: Limiters × PerServer
	PerServer float64 `json:"per_server"`
	Limiters  int     `json:"limiters"`
	BelowRate float64 `json:"below_rate"`
	AboveRate float64 `json:"above_rate"`
	Below     rlCount `json:"below"`
	Above     rlCount `json:"above"`
	// AcceptedRate is what got through per second while sending above.
	AcceptedRate float64 `json:"accepted_rate"`
	OK           bool    `json:"ok"`
	Problems     []string
	LoadResult   *load.Result `json:"-"`
}

// rateLimitPlan: "below" at below×limit, then "above" at above×limit,
// each for d, one second apart so the bucket refills in between.
func rateLimitPlan(rc profile.RateLimitCheck) *load.Plan {
	d := rc.Duration.D()
	mk := func(name string, rate float64, start time.Duration) load.Scenario {
		vus := int(rate/5) + 5 // a status answer takes ms; few VUs keep up
		return load.Scenario{Name: name, Executor: load.ConstantArrivalRate, Rate: rate, TimeUnit: time.Second,
			Duration: d, StartTime: start, PreAllocatedVUs: vus, MaxVUs: 4 * vus, GracefulStop: 5 * time.Second}
	}
	return &load.Plan{Name: "ratelimit", Description: "429s with Retry-After at the configured limit, none below it",
		Scenarios: []load.Scenario{mk("below", rc.Below*rc.Limit, 0), mk("above", rc.Above*rc.Limit, d+time.Second)}}
}

// runRateLimitCheck drives target (limiters servers in round robin, each
// started with --rate-limit rc.Limit) and judges the outcome.
//
// The requests of one client spread evenly over the limiters, each with
// its own bucket of rc.Limit tokens per second (burst rc.Limit), so the
// client's limit is limiters × rc.Limit: the check sends below and above
// that, and while above, in d seconds it expects between 0.8 × N × L and
// 1.25 × (N × L + N × L / d) requests per second through (N limiters of L
// per second, each bucket full at the start).
func runRateLimitCheck(ctx context.Context, target string, limiters int, rc profile.RateLimitCheck, progress io.Writer) (*RateLimitResult, error) {
	perServer := rc.Limit
	rc.Limit *= float64(max(limiters, 1))
	rl := newRateLimitCounter()
	res, err := load.Run(ctx, rateLimitPlan(rc), load.Options{Target: target, Workload: load.IterationFunc(rl.iteration), Progress: progress, RunID: "ratelimit-" + randomSuffix()})
	if err != nil {
		return nil, fmt.Errorf("rate-limit check: %w", err)
	}
	out := &RateLimitResult{Limit: rc.Limit, PerServer: perServer, Limiters: max(limiters, 1), BelowRate: rc.Below * rc.Limit, AboveRate: rc.Above * rc.Limit, LoadResult: res}
	rl.mu.Lock()
	if c := rl.counts["below"]; c != nil {
		out.Below = *c
	}
	if c := rl.counts["above"]; c != nil {
		out.Above = *c
	}
	rl.mu.Unlock()
	if out.Below.Total == 0 || out.Above.Total == 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("too few requests sent (below %d, above %d)", out.Below.Total, out.Above.Total))
	}
	if out.Below.Limited > 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("%d of %d requests at %.0f req/s (below the limit of %.0f) got 429", out.Below.Limited, out.Below.Total, out.BelowRate, rc.Limit))
	}
	if out.Above.Limited == 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("no 429 among %d requests at %.0f req/s (above the limit of %.0f)", out.Above.Total, out.AboveRate, rc.Limit))
	}
	if out.Above.WithRetryAfter < out.Above.Limited {
		out.Problems = append(out.Problems, fmt.Sprintf("%d of %d 429s lack a valid Retry-After", out.Above.Limited-out.Above.WithRetryAfter, out.Above.Limited))
	}
	// At the limit: what got through while sending above it is the limit
	// rate plus at most one burst (the bucket holds limit tokens).
	if d := rc.Duration.D().Seconds(); out.Above.Total > 0 && d > 0 {
		got := float64(out.Above.Total-out.Above.Limited) / d
		lo, hi := 0.8*rc.Limit, 1.25*(rc.Limit+rc.Limit/d)
		out.AcceptedRate = got
		if got < lo || got > hi {
			out.Problems = append(out.Problems, fmt.Sprintf("while sending %.0f req/s, %.1f req/s got through: want about the limit %.0f (%.0f..%.0f)", out.AboveRate, got, rc.Limit, lo, hi))
		}
	}
	if other := out.Below.Other + out.Above.Other; other > 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("%d responses were neither 200 nor 429", other))
	}
	out.OK = len(out.Problems) == 0
	return out, nil
}

// rateLimitScenario runs the rate-limit check and reports it as a scenario
// whose thresholds are the check's conditions.
func (s *Session) rateLimitScenario(ctx context.Context, target string, limiters int, rc profile.RateLimitCheck) report.Scenario {
	sc := report.Scenario{Name: "ratelimit", File: "(built in: " + s.opts.Profile.Name + " profile's ratelimit)"}
	r, err := runRateLimitCheck(ctx, target, limiters, rc, s.opts.Progress)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	readings.FromLoad(&sc, r.LoadResult)
	sc.Thresholds = []report.Threshold{
		{Metric: fmt.Sprintf("429s at %.0f req/s (limit %s)", r.BelowRate, r.limitText()), Expr: fmt.Sprintf("count==0 (got %d of %d)", r.Below.Limited, r.Below.Total), OK: r.Below.Limited == 0},
		{Metric: fmt.Sprintf("429s at %.0f req/s (limit %s)", r.AboveRate, r.limitText()), Expr: fmt.Sprintf("count>0 (got %d of %d)", r.Above.Limited, r.Above.Total), OK: r.Above.Limited > 0},
		{Metric: "429s with Retry-After", Expr: fmt.Sprintf("rate==1 (%d of %d)", r.Above.WithRetryAfter, r.Above.Limited), OK: r.Above.WithRetryAfter == r.Above.Limited},
		{Metric: "accepted rate while above the limit", Expr: fmt.Sprintf("about %.0f/s (got %.1f/s)", r.Limit, r.AcceptedRate), OK: len(r.Problems) == 0 || !slices.ContainsFunc(r.Problems, func(p string) bool { return strings.Contains(p, "got through") })},
	}
	sc.Passed = r.OK
	if !r.OK {
		sc.Warnings = append(sc.Warnings, r.Problems...)
	}
	sc.Metrics.Status429 = float64(r.Below.Limited + r.Above.Limited)
	sc.Metrics.ErrorRate = 0 // 429s are the point here, not errors
	return sc
}

// limitText is the client's limit, with its product when several servers
// share it: "60 = 3 replicas × 20".
func (r *RateLimitResult) limitText() string {
	if r.Limiters <= 1 {
		return fmt.Sprintf("%.0f", r.Limit)
	}
	return fmt.Sprintf("%.0f = %d replicas × %g", r.Limit, r.Limiters, r.PerServer)
}
