// Package ratecheck is the lab's rate-limit check: against servers started
// with --rate-limit, one client's requests to an anonymous route at half
// the limit get no 429, at twice the limit they get 429s, each with a valid
// Retry-After, and about the limit gets through. It is a load run of its
// own (lab/load) and its verdict.
package ratecheck

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

// Check says what to send: below×Limit then above×Limit requests per
// second, each for Duration, against servers started with --rate-limit
// Limit.
type Check struct {
	Limit, Below, Above float64
	Duration            time.Duration
}

// statusPath is an anonymous, rate-limited route: one client identity
// (the lab's IP) for every request.
const statusPath = "/api/v1/status"

// counter counts, per scenario, the responses to GET
// statusPath, the 429s and the 429s that carry a valid Retry-After.
type counter struct {
	mu     sync.Mutex
	counts map[string]*Count
}

// Count is what one part of the check got back.
type Count struct {
	Total, Limited, WithRetryAfter, Other int64
}

func newCounter() *counter {
	return &counter{counts: map[string]*Count{}}
}

// iteration is every VU's (load.IterationFunc): one request, counted.
func (rl *counter) iteration(ctx context.Context, it *load.Iter) error {
	resp, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: statusPath, Op: "ratelimit", Discard: true})
	if err != nil {
		return err
	}
	ra, raErr := strconv.Atoi(resp.Header.Get("Retry-After"))
	okRA := raErr == nil && ra >= 1
	rl.mu.Lock()
	c := rl.counts[it.Scenario]
	if c == nil {
		c = &Count{}
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

// Result is the verdict of the check.
type Result struct {
	Limit     float64 `json:"limit"` // the client's: Limiters × PerServer
	PerServer float64 `json:"per_server"`
	Limiters  int     `json:"limiters"`
	BelowRate float64 `json:"below_rate"`
	AboveRate float64 `json:"above_rate"`
	Below     Count   `json:"below"`
	Above     Count   `json:"above"`
	// AcceptedRate is what got through per second while sending above.
	AcceptedRate float64 `json:"accepted_rate"`
	OK           bool    `json:"ok"`
	Problems     []string
	LoadResult   *load.Result `json:"-"`
}

// plan: "below" at below×limit, then "above" at above×limit, each for
// d, one second apart so the bucket refills in between.
func plan(rc Check) *load.Plan {
	d := rc.Duration
	mk := func(name string, rate float64, start time.Duration) load.Scenario {
		vus := int(rate/5) + 5 // a status answer takes ms; few VUs keep up
		return load.Scenario{Name: name, Executor: load.ConstantArrivalRate, Rate: rate, TimeUnit: time.Second,
			Duration: d, StartTime: start, PreAllocatedVUs: vus, MaxVUs: 4 * vus, GracefulStop: 5 * time.Second}
	}
	return &load.Plan{Name: "ratelimit", Description: "429s with Retry-After at the configured limit, none below it",
		Scenarios: []load.Scenario{mk("below", rc.Below*rc.Limit, 0), mk("above", rc.Above*rc.Limit, d+time.Second)}}
}

// Run drives target (limiters servers in round robin, each started with
// --rate-limit rc.Limit) and judges the outcome; runID names its load.
//
// The requests of one client spread evenly over the limiters, each with
// its own bucket of rc.Limit tokens per second (burst rc.Limit), so the
// client's limit is limiters × rc.Limit: the check sends below and above
// that, and while above, in d seconds it expects between 0.8 × N × L and
// 1.25 × (N × L + N × L / d) requests per second through (N limiters of L
// per second, each bucket full at the start).
func Run(ctx context.Context, target string, limiters int, rc Check, progress io.Writer, runID string) (*Result, error) {
	perServer := rc.Limit
	rc.Limit *= float64(max(limiters, 1))
	rl := newCounter()
	res, err := load.Run(ctx, plan(rc), load.Options{Target: target, Workload: load.IterationFunc(rl.iteration), Progress: progress, RunID: runID})
	if err != nil {
		return nil, fmt.Errorf("rate-limit check: %w", err)
	}
	out := &Result{Limit: rc.Limit, PerServer: perServer, Limiters: max(limiters, 1), BelowRate: rc.Below * rc.Limit, AboveRate: rc.Above * rc.Limit, LoadResult: res}
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
	if d := rc.Duration.Seconds(); out.Above.Total > 0 && d > 0 {
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

// LimitText is the client's limit, with its product when several servers
// share it: "60 = 3 replicas × 20".
func (r *Result) LimitText() string {
	if r.Limiters <= 1 {
		return fmt.Sprintf("%.0f", r.Limit)
	}
	return fmt.Sprintf("%.0f = %d replicas × %g", r.Limit, r.Limiters, r.PerServer)
}
