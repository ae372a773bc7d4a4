// Package redislimits is the Redis backend of limits: GCRA in a Lua
// script, timed by Redis's clock, so every replica on one Redis shares the
// counts. The script is redis_rate's (github.com/go-redis/redis_rate, after
// rwz/redis-gcra) with one change: a negative cost gives events back and
// deletes the key once its bucket is empty (redis_rate leaves the key as
// it was when a refund would empty the bucket, so a refunded slot stayed
// taken).
package redislimits

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hal9-lab/hal9-lab/server/limits"
)

// Prefix starts every key this backend writes.
const Prefix = "hal9:limit:"

// Timeout bounds one decision: a login is never held up for long, memory
// takes over (and the limiter's breaker skips Redis after a few).
const Timeout = 250 * time.Millisecond

// Backend is a limits.Backend on Redis.
type Backend struct{ c redis.UniversalClient }

var _ limits.Backend = Backend{}

// New uses client (shared with the cache tier).
func New(client redis.UniversalClient) Backend { return Backend{client} }

// gcra: KEYS[1] the bucket; ARGV burst, rate, period (seconds), cost.
// Returns {allowed, remaining, retry after in seconds (string)}.
var gcra = redis.NewScript(`
local burst, rate, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ei = period / rate
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + t[2] / 1000000 -- since 2017: keeps microseconds in a double
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + ei * cost
if cost < 0 then
  if new <= now then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil((new - now) * 1000))
  end
  return {1, 0, '0'}
end
local diff = now - (new - ei * burst)
if diff < 0 then return {0, 0, tostring(-diff)} end
if cost > 0 then
  redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil((new - now) * 1000))
end
return {1, math.floor(diff / ei), '0'}
`)

// AllowN implements limits.Backend.
func (b Backend) AllowN(ctx context.Context, key string, l limits.Limit, n int) (limits.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	res, err := gcra.Run(ctx, b.c, []string{Prefix + key}, l.Burst, l.Rate, l.Period.Seconds(), n).Slice()
	if err != nil {
		return limits.Result{}, fmt.Errorf("redis limit %s: %w", key, err)
	}
	if len(res) != 3 {
		return limits.Result{}, fmt.Errorf("redis limit %s: answer %v", key, res)
	}
	allowed, _ := res[0].(int64)
	remaining, _ := res[1].(int64)
	retry, _ := res[2].(string)
	r := limits.Result{Allowed: allowed == 1, Remaining: int(remaining)}
	if !r.Allowed {
		s, _ := strconv.ParseFloat(retry, 64)
		r.RetryAfter = time.Duration(s * float64(time.Second))
	}
	return r, nil
}
