package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/ratecheck"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// rateLimitCheck restarts the leg's servers with the check's --rate-limit
// and adds the check to the leg as a scenario.
func (l *leg) rateLimitCheck(ctx context.Context, rc profile.RateLimitCheck) {
	l.stopServer()
	l.checkOnly = true // its --rate-limit is the check's, not a departure of the measurements
	if err := l.step("start server", func() error { return l.startServer(ctx, rc.Limit) }); err != nil {
		return
	}
	var sc report.Scenario
	n := l.srv.Len() // round robin over n limiters: n × the limit gets through
	_ = l.step(fmt.Sprintf("rate-limit check: %.0f then %.0f req/s against --rate-limit %.0f%s", rc.Below*rc.Limit*float64(n), rc.Above*rc.Limit*float64(n), rc.Limit, limitersText(n)), func() error {
		sc = l.s.rateLimitScenario(ctx, l.srv.URL(), n, rc)
		if sc.Error != "" {
			return errors.New(sc.Error)
		}
		return nil
	})
	l.out.Scenarios = append(l.out.Scenarios, sc)
}

// limitersText names the limiters of the rate-limit check.
func limitersText(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" on each of %d replicas in round robin", n)
}

// rateLimitScenario runs the rate-limit check and reports it as a scenario
// whose thresholds are the check's conditions.
func (s *session) rateLimitScenario(ctx context.Context, target string, limiters int, rc profile.RateLimitCheck) report.Scenario {
	sc := report.Scenario{Name: "ratelimit", File: "(built in: " + s.opts.Profile.Name + " profile's ratelimit)"}
	r, err := ratecheck.Run(ctx, target, limiters, ratecheck.Check{Limit: rc.Limit, Below: rc.Below, Above: rc.Above, Duration: rc.Duration.D()},
		s.opts.Progress, "ratelimit-"+randomSuffix())
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	readings.FromLoad(&sc, r.LoadResult)
	sc.Thresholds = []report.Threshold{
		{Metric: fmt.Sprintf("429s at %.0f req/s (limit %s)", r.BelowRate, r.LimitText()), Expr: fmt.Sprintf("count==0 (got %d of %d)", r.Below.Limited, r.Below.Total), OK: r.Below.Limited == 0},
		{Metric: fmt.Sprintf("429s at %.0f req/s (limit %s)", r.AboveRate, r.LimitText()), Expr: fmt.Sprintf("count>0 (got %d of %d)", r.Above.Limited, r.Above.Total), OK: r.Above.Limited > 0},
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
