// Package redislimits is the Redis backend of limits: GCRA in a Lua script
// (github.com/go-redis/redis_rate), timed by Redis's clock, so every
// replica on one Redis shares the counts.
package redislimits

import (
	"context"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/hal9-lab/hal9-lab/server/limits"
)

// Prefix starts every key this backend writes (after redis_rate's "rate:").
const Prefix = "hal9:limit:"

// Backend is a limits.Backend on Redis.
type Backend struct{ l *redis_rate.Limiter }

var _ limits.Backend = Backend{}

// New uses client (shared with the cache tier).
func New(client *redis.Client) Backend { return Backend{redis_rate.NewLimiter(client)} }

// AllowN implements limits.Backend.
func (b Backend) AllowN(ctx context.Context, key string, l limits.Limit, n int) (limits.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond) // never hold a login up for long: memory takes over
	defer cancel()
	r, err := b.l.AllowN(ctx, Prefix+key, redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: l.Burst}, n)
	if err != nil {
		return limits.Result{}, err
	}
	res := limits.Result{Allowed: r.Allowed > 0 || (n == 0 && r.Remaining >= 0), Remaining: r.Remaining}
	if !res.Allowed {
		res.RetryAfter = r.RetryAfter
	}
	return res, nil
}
