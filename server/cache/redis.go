package cache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// ErrUnavailable: the Redis tier is skipping calls after a connection error
// (see RedisOptions.Backoff). Layered counts it as result="error".
var ErrUnavailable = errors.New("redis tier unavailable (backing off after a connection error)")

// RedisOptions configure the Redis tier. Timeouts are small on purpose: a
// dead Redis should cost a request at most one short timeout, then nothing
// for Backoff.
type RedisOptions struct {
	PoolSize     int           // default 10 per CPU (go-redis)
	MinIdle      int           // idle connections kept open (default 0)
	DialTimeout  time.Duration // default 250 ms
	ReadTimeout  time.Duration // default 250 ms
	WriteTimeout time.Duration // default 250 ms
	PoolTimeout  time.Duration // wait for a free connection; default 500 ms
	Backoff      time.Duration // skip Redis this long after a connection error; default 1 s
	DefaultTTL   time.Duration // for Set with ttl 0; default 10 min
}

// Redis is the shared second tier. After a connection error it answers
// ErrUnavailable without touching the network for Backoff; then one call
// probes, and on success Redis is used again: recovery needs no operator.
type Redis struct {
	c         *redis.Client
	opts      RedisOptions
	downUntil atomic.Int64 // unix nanos; 0 = up
}

var _ Tier = (*Redis)(nil)

// NewRedis parses a redis:// (or rediss://) URL and creates the client. It
// does not fail when Redis is unreachable (the tier starts in back-off and
// recovers by itself); use Healthy to report it.
func NewRedis(ctx context.Context, url string, opts RedisOptions, m *Metrics) (*Redis, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url %q (want redis://[:password@]host:port/db): %w", redact.URL(url), err)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 250 * time.Millisecond
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 250 * time.Millisecond
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 250 * time.Millisecond
	}
	if opts.PoolTimeout <= 0 {
		opts.PoolTimeout = 500 * time.Millisecond
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = 10 * time.Minute
	}
	if opts.PoolSize > 0 {
		o.PoolSize = opts.PoolSize
	}
	if opts.MinIdle > 0 {
		o.MinIdleConns = opts.MinIdle
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout
	o.MaxRetries = -1        // a cache read is not worth retrying: miss and move on
	o.DialerRetries = 1      // go-redis would otherwise dial 5 times per attempt
	o.DisableIdentity = true // no CLIENT SETINFO round trip on each new connection
	r := &Redis{c: redis.NewClient(o), opts: opts}
	if m != nil {
		m.WriteErrors.WithLabelValues("redis")
	}
	// Learn the state early so the first request does not pay the dial.
	if err := r.Healthy(ctx); err != nil {
		r.markDown()
	}
	return r, nil
}

// Name is "redis".
func (r *Redis) Name() string { return "redis" }

// Client is the underlying go-redis client (for pipelines elsewhere).
func (r *Redis) Client() *redis.Client { return r.c }

// Get reads one key.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	if err := r.admit(); err != nil {
		return nil, err
	}
	b, err := r.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		r.up()
		return nil, ErrMiss
	}
	if err != nil {
		return nil, r.fail(ctx, "get "+key, err)
	}
	r.up()
	return b, nil
}

// GetMulti reads many keys in one MGET round trip; a missing key has a nil
// value.
func (r *Redis) GetMulti(ctx context.Context, keys []string) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if err := r.admit(); err != nil {
		return nil, err
	}
	vals, err := r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, r.fail(ctx, fmt.Sprintf("mget %d keys", len(keys)), err)
	}
	r.up()
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

// Set writes one key with ttl (0: the default TTL).
func (r *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := r.admit(); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = r.opts.DefaultTTL
	}
	if err := r.c.Set(ctx, key, val, ttl).Err(); err != nil {
		return r.fail(ctx, "set "+key, err)
	}
	r.up()
	return nil
}

// KV is one key and value for SetMulti.
type KV struct {
	Key string
	Val []byte
}

// SetMulti writes many keys in one pipelined round trip.
func (r *Redis) SetMulti(ctx context.Context, kvs []KV, ttl time.Duration) error {
	if len(kvs) == 0 {
		return nil
	}
	if err := r.admit(); err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = r.opts.DefaultTTL
	}
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, kv := range kvs {
			p.Set(ctx, kv.Key, kv.Val, ttl)
		}
		return nil
	})
	if err != nil {
		return r.fail(ctx, fmt.Sprintf("pipelined set of %d keys", len(kvs)), err)
	}
	r.up()
	return nil
}

// Delete removes a key.
func (r *Redis) Delete(ctx context.Context, key string) error {
	if err := r.admit(); err != nil {
		return err
	}
	if err := r.c.Del(ctx, key).Err(); err != nil {
		return r.fail(ctx, "del "+key, err)
	}
	r.up()
	return nil
}

// Healthy pings Redis (bounded by the read timeout), ignoring the back-off.
func (r *Redis) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.DialTimeout+r.opts.ReadTimeout)
	defer cancel()
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping %s: %w", r.c.Options().Addr, err)
	}
	return nil
}

// Close closes the pool.
func (r *Redis) Close() error { return r.c.Close() }

// admit refuses calls during the back-off. When it has passed, the first
// caller moves the deadline forward and probes; the others keep skipping
// until the probe succeeds (r.up) or fails (r.markDown again).
func (r *Redis) admit() error {
	until := r.downUntil.Load()
	if until == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if now < until {
		return ErrUnavailable
	}
	if r.downUntil.CompareAndSwap(until, now+int64(r.opts.Backoff)) {
		return nil // this call is the probe
	}
	return ErrUnavailable
}

func (r *Redis) up() {
	if r.downUntil.Load() != 0 {
		r.downUntil.Store(0)
	}
}

func (r *Redis) markDown() {
	r.downUntil.Store(time.Now().Add(r.opts.Backoff).UnixNano())
}

// fail wraps err; connection-level failures start the back-off. A reply
// error (e.g. WRONGTYPE) or the caller's own cancellation does not.
func (r *Redis) fail(ctx context.Context, op string, err error) error {
	var reply redis.Error
	if ctx.Err() == nil && !errors.As(err, &reply) {
		r.markDown()
	}
	return fmt.Errorf("redis %s: %w", op, err)
}

// Collector exports the pool's statistics (hal9_redis_pool_*).
func (r *Redis) Collector() prometheus.Collector { return poolCollector{r.c} }

type poolCollector struct{ c *redis.Client }

var (
	poolHits     = prometheus.NewDesc("hal9_redis_pool_hits_total", "Times a free connection was found in the pool.", nil, nil)
	poolMisses   = prometheus.NewDesc("hal9_redis_pool_misses_total", "Times no free connection was in the pool.", nil, nil)
	poolTimeouts = prometheus.NewDesc("hal9_redis_pool_timeouts_total", "Times waiting for a connection timed out.", nil, nil)
	poolWaits    = prometheus.NewDesc("hal9_redis_pool_waits_total", "Times a caller waited for a connection.", nil, nil)
	poolWaitSecs = prometheus.NewDesc("hal9_redis_pool_wait_seconds_total", "Time spent waiting for connections.", nil, nil)
	poolTotal    = prometheus.NewDesc("hal9_redis_pool_total_conns", "Connections in the pool.", nil, nil)
	poolIdle     = prometheus.NewDesc("hal9_redis_pool_idle_conns", "Idle connections in the pool.", nil, nil)
	poolStale    = prometheus.NewDesc("hal9_redis_pool_stale_conns_total", "Stale connections removed from the pool.", nil, nil)
)

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolHits, poolMisses, poolTimeouts, poolWaits, poolWaitSecs, poolTotal, poolIdle, poolStale} {
		ch <- d
	}
}

func (pc poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := pc.c.PoolStats()
	ch <- prometheus.MustNewConstMetric(poolHits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(poolMisses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(poolTimeouts, prometheus.CounterValue, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(poolWaitSecs, prometheus.CounterValue, float64(s.WaitDurationNs)/1e9)
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.TotalConns))
	ch <- prometheus.MustNewConstMetric(poolIdle, prometheus.GaugeValue, float64(s.IdleConns))
	ch <- prometheus.MustNewConstMetric(poolStale, prometheus.CounterValue, float64(s.StaleConns))
}
