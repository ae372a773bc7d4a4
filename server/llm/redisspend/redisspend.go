// Package redisspend is the Redis backend of the LLM spend ledger: every
// replica on one Redis reserves from, and settles into, the same buckets,
// each reservation checked and charged in one Lua script (atomic in Redis),
// so no two replicas can both take the last of a budget.
//
// Layout, per scope (everyone: "all"; a user: "u:<id>"): a hash of minute
// buckets (field = unix minute, value = nano-dollars) for the hour window
// and a hash of hour buckets for the day window; per user, a sorted set of
// its reservations in flight scored by when their lease ends.
package redisspend

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hal9-lab/hal9-lab/server/llm"
)

// Prefix starts every key this backend writes.
const Prefix = "hal9:llm:spend:"

// Backend is an llm.SpendBackend on Redis.
type Backend struct{ c redis.UniversalClient }

var _ llm.SpendBackend = (*Backend)(nil)

// New uses client (shared with the cache tier).
func New(client redis.UniversalClient) *Backend { return &Backend{c: client} }

func keys(user string) []string {
	ks := []string{Prefix + "all:m", Prefix + "all:h"}
	if user != "" {
		u := Prefix + "u:" + user
		ks = append(ks, u+":m", u+":h", u+":calls")
	}
	return ks
}

// The sum of a window, and the prune of buckets that left it, are the same
// in both scripts.
const common = `
local function fields(first, n)
  local f = {}
  for i = 0, n - 1 do f[#f + 1] = tostring(first + i) end
  return f
end
local function window(key, first, n)
  local vals = redis.call('HMGET', key, unpack(fields(first, n)))
  local sum, out = 0, {}
  for i, v in ipairs(vals) do
    local x = tonumber(v) or 0
    sum = sum + x
    out[i] = x
  end
  return sum, out
end
local function prune(key, first, keep)
  if redis.call('HLEN', key) > 2 * keep then
    for _, f in ipairs(redis.call('HKEYS', key)) do
      if tonumber(f) < first then redis.call('HDEL', key, f) end
    end
  end
end
`

// reserve: KEYS all:m all:h [user:m user:h user:calls]; ARGV amount,
// minute, hour, enforce, hour budget, day budget, user hour, user day,
// user calls, now ms, lease ms, id, hour buckets, day buckets. Returns
// {reason, hour total, day total, calls, first bucket, buckets...}: reason
// "" admitted; on a share refusal the refused window's buckets follow.
var reserve = redis.NewScript(common + `
local amt, m, h = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local hn, dn = tonumber(ARGV[13]), tonumber(ARGV[14])
local enforce = ARGV[4] == '1'
local hs, hb = window(KEYS[1], m - hn + 1, hn)
local ds, db = window(KEYS[2], h - dn + 1, dn)
local function refuse(reason, first, b, calls)
  local out = {reason, hs, ds, calls or 0, first}
  for _, x in ipairs(b) do out[#out + 1] = x end
  return out
end
if enforce then
  if hs + amt > tonumber(ARGV[5]) then return refuse('hourly_budget', m - hn + 1, hb) end
  if ds + amt > tonumber(ARGV[6]) then return refuse('daily_budget', h - dn + 1, db) end
end
local user = #KEYS == 5
if user then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[10])
  if enforce then
    local uh, uhb = window(KEYS[3], m - hn + 1, hn)
    local ud, udb = window(KEYS[4], h - dn + 1, dn)
    local lh, ld, lc = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
    if lh > 0 and uh + amt > lh then return refuse('user_hourly_share', m - hn + 1, uhb) end
    if ld > 0 and ud + amt > ld then return refuse('user_daily_share', h - dn + 1, udb) end
    local calls = redis.call('ZCARD', KEYS[5])
    if lc > 0 and calls >= lc then return refuse('user_calls', 0, {}, calls) end
  end
end
local scopes = {1}
if user then scopes = {1, 3} end
for _, i in ipairs(scopes) do
  redis.call('HINCRBY', KEYS[i], ARGV[2], amt)
  redis.call('EXPIRE', KEYS[i], hn * 60 + 60)
  prune(KEYS[i], m - hn + 1, hn)
  redis.call('HINCRBY', KEYS[i + 1], ARGV[3], amt)
  redis.call('EXPIRE', KEYS[i + 1], dn * 3600 + 3600)
  prune(KEYS[i + 1], h - dn + 1, dn)
end
if user then
  redis.call('ZADD', KEYS[5], tonumber(ARGV[10]) + tonumber(ARGV[11]), ARGV[12])
  redis.call('PEXPIRE', KEYS[5], ARGV[11])
end
return {'', hs + amt, ds + amt, 0, 0}
`)

// settle: KEYS as reserve; ARGV delta, reservation minute, reservation
// hour, id, now minute, now hour, hour buckets, day buckets. Returns
// {hour total, day total}.
var settle = redis.NewScript(common + `
local d = tonumber(ARGV[1])
local scopes = {1}
if #KEYS == 5 then scopes = {1, 3} end
if d ~= 0 then
  for _, i in ipairs(scopes) do
    if redis.call('HEXISTS', KEYS[i], ARGV[2]) == 1 then redis.call('HINCRBY', KEYS[i], ARGV[2], d) end
    if redis.call('HEXISTS', KEYS[i + 1], ARGV[3]) == 1 then redis.call('HINCRBY', KEYS[i + 1], ARGV[3], d) end
  end
end
if #KEYS == 5 then redis.call('ZREM', KEYS[5], ARGV[4]) end
local hn, dn = tonumber(ARGV[7]), tonumber(ARGV[8])
local hs = window(KEYS[1], tonumber(ARGV[5]) - hn + 1, hn)
local ds = window(KEYS[2], tonumber(ARGV[6]) - dn + 1, dn)
return {hs, ds}
`)

var totals = redis.NewScript(common + `
local hn, dn = tonumber(ARGV[3]), tonumber(ARGV[4])
local hs = window(KEYS[1], tonumber(ARGV[1]) - hn + 1, hn)
local ds = window(KEYS[2], tonumber(ARGV[2]) - dn + 1, dn)
return {hs, ds}
`)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Reserve implements llm.SpendBackend.
func (b *Backend) Reserve(ctx context.Context, r llm.Reservation, lim llm.SpendLimits) (llm.Verdict, error) {
	m, h := r.At.Unix()/60, r.At.Unix()/3600
	res, err := reserve.Run(ctx, b.c, keys(r.User), r.Amount, m, h, b2i(lim.Enforce), lim.Hour, lim.Day,
		lim.UserHour, lim.UserDay, lim.UserCalls, r.At.UnixMilli(), lim.Lease.Milliseconds(), r.ID,
		llm.HourBuckets, llm.DayBuckets).Slice()
	if err != nil {
		return llm.Verdict{}, fmt.Errorf("redis reserve LLM spend: %w", err)
	}
	if len(res) < 5 {
		return llm.Verdict{}, fmt.Errorf("redis reserve LLM spend: answer %v", res)
	}
	reason, _ := res[0].(string)
	v := llm.Verdict{Refused: reason, Totals: llm.SpendTotals{Hour: num(res[1]), Day: num(res[2])}, Calls: int(num(res[3]))}
	if reason == "" {
		return v, nil
	}
	// The refused window's buckets, oldest first, for Retry-After.
	first := num(res[4])
	bs := map[int64]int64{}
	var spent int64
	for i, x := range res[5:] {
		bs[first+int64(i)] = num(x)
		spent += num(x)
	}
	v.Spent = spent
	switch reason {
	case llm.RefusedHour:
		v.Limit, v.Spent = lim.Hour, v.Totals.Hour
	case llm.RefusedDay:
		v.Limit, v.Spent = lim.Day, v.Totals.Day
	case llm.RefusedUserHour:
		v.Limit = lim.UserHour
	case llm.RefusedUserDay:
		v.Limit = lim.UserDay
	case llm.RefusedUserCall:
		v.RetryAfter = time.Second
		return v, nil
	}
	switch reason {
	case llm.RefusedHour, llm.RefusedUserHour:
		v.RetryAfter = llm.RetryAfterBuckets(bs, m, llm.HourBuckets, time.Minute, r.At, v.Spent, v.Limit, r.Amount)
	default:
		v.RetryAfter = llm.RetryAfterBuckets(bs, h, llm.DayBuckets, time.Hour, r.At, v.Spent, v.Limit, r.Amount)
	}
	return v, nil
}

// Settle implements llm.SpendBackend.
func (b *Backend) Settle(ctx context.Context, r llm.Reservation, delta int64, now time.Time) (llm.SpendTotals, error) {
	res, err := settle.Run(ctx, b.c, keys(r.User), delta, r.At.Unix()/60, r.At.Unix()/3600, r.ID,
		now.Unix()/60, now.Unix()/3600, llm.HourBuckets, llm.DayBuckets).Slice()
	if err != nil {
		return llm.SpendTotals{}, fmt.Errorf("redis settle LLM spend: %w", err)
	}
	return pair(res)
}

// Totals implements llm.SpendBackend.
func (b *Backend) Totals(ctx context.Context, now time.Time) (llm.SpendTotals, error) {
	res, err := totals.Run(ctx, b.c, keys(""), now.Unix()/60, now.Unix()/3600, llm.HourBuckets, llm.DayBuckets).Slice()
	if err != nil {
		return llm.SpendTotals{}, fmt.Errorf("redis read LLM spend: %w", err)
	}
	return pair(res)
}

func pair(res []any) (llm.SpendTotals, error) {
	if len(res) != 2 {
		return llm.SpendTotals{}, fmt.Errorf("redis LLM spend: answer %v", res)
	}
	return llm.SpendTotals{Hour: num(res[0]), Day: num(res[1])}, nil
}

// num reads a script's number (Lua numbers come back as integers).
func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}
