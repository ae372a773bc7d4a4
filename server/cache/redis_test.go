package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMain(m *testing.M) { infratest.Main(m) }

// newRedis connects to this test's own Redis DB (infratest); keys get a
// per-test prefix as well, so a shared external Redis is never confused.
func newRedis(t testing.TB, url string, opts RedisOptions, m *Metrics) (*Redis, string) {
	t.Helper()
	r, err := NewRedis(context.Background(), url, opts, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	prefix := fmt.Sprintf("hal9:test:%s:%d:", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
	return r, prefix
}

func TestRedisTier(t *testing.T) {
	ctx := context.Background()
	r, p := newRedis(t, infratest.RedisURL(t), RedisOptions{PoolSize: 4, MinIdle: 1}, nil)
	if err := r.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, p+"absent"); !errors.Is(err, ErrMiss) {
		t.Fatalf("absent key: %v, want ErrMiss", err)
	}
	if err := r.Set(ctx, p+"a", []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.SetMulti(ctx, []KV{{p + "b", []byte("2")}, {p + "c", []byte("3")}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	vals, err := r.GetMulti(ctx, []string{p + "a", p + "missing", p + "c"})
	if err != nil || len(vals) != 3 || string(vals[0]) != "1" || vals[1] != nil || string(vals[2]) != "3" {
		t.Fatalf("GetMulti = %q %v", vals, err)
	}
	ttl, err := r.Client().PTTL(ctx, p+"a").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL of a = %v %v", ttl, err)
	}
	if err := r.Delete(ctx, p+"a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, p+"a"); !errors.Is(err, ErrMiss) {
		t.Fatalf("after Delete: %v", err)
	}
	// short TTLs expire in Redis too.
	_ = r.Set(ctx, p+"short", []byte("x"), 50*time.Millisecond)
	eventually(t, "the 50 ms Redis key to expire", func() bool {
		_, err := r.Get(ctx, p+"short")
		return errors.Is(err, ErrMiss)
	})

	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector())
	// One series each: the count is the number of families present.
	names := []string{"hal9_redis_pool_hits_total", "hal9_redis_pool_misses_total", "hal9_redis_pool_timeouts_total",
		"hal9_redis_pool_total_conns", "hal9_redis_pool_idle_conns", "hal9_redis_pool_stale_conns_total"}
	if n, err := testutil.GatherAndCount(reg, names...); err != nil || n != len(names) {
		t.Errorf("%d of the pool metrics %v exported (%v)", n, names, err)
	}
}

func TestNewRedisBadURL(t *testing.T) {
	for _, u := range []string{"", "http://localhost:6379", "redis://localhost:6379/notanumber", "redis://:hunter2@localhost:6379/notanumber"} {
		_, err := NewRedis(context.Background(), u, RedisOptions{}, nil)
		if err == nil {
			t.Errorf("NewRedis(%q) accepted", u)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewRedis(%q): the error shows the password: %v", u, err)
		}
	}
}

func TestLayeredProcessRedis(t *testing.T) {
	ctx := context.Background()
	m := newTestMetrics()
	r, p := newRedis(t, infratest.RedisURL(t), RedisOptions{}, m)
	proc := newProcess(t, ProcessOptions{}, m)
	l := NewLayered(m, proc, r)
	key := p + "llm"
	load := func(context.Context) ([]byte, error) { return []byte("answer"), nil }

	if _, res, err := l.GetOrLoad(ctx, "L2", key, time.Minute, load); err != nil || res.Hit {
		t.Fatalf("first read: %+v %v", res, err)
	}
	proc.Wait()
	if _, res, _ := l.GetOrLoad(ctx, "L2", key, time.Minute, load); res.Tier != "process" {
		t.Fatalf("second read from %q, want process", res.Tier)
	}
	// another instance (empty process tier) hits Redis and backfills.
	proc2 := newProcess(t, ProcessOptions{}, nil)
	l2 := NewLayered(m, proc2, r)
	if v, res, _ := l2.GetOrLoad(ctx, "L2", key, time.Minute, load); res.Tier != "redis" || string(v) != "answer" {
		t.Fatalf("other instance read from %q, want redis", res.Tier)
	}
	proc2.Wait()
	if _, res, _ := l2.GetOrLoad(ctx, "L2", key, time.Minute, load); res.Tier != "process" {
		t.Fatalf("after backfill read from %q, want process", res.Tier)
	}
	if requests(m, "redis", "L2", ResultHit) != 1 {
		t.Fatalf("redis hits %v, want 1", requests(m, "redis", "L2", ResultHit))
	}
}

// Redis stopped mid-test: Layered keeps answering and counts errors; Redis
// started again: used again without any call from us.
func TestLayeredRedisDegradation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own redis-server")
	}
	ctx := context.Background()
	proc := infratest.RedisProcess(t)
	m := newTestMetrics()
	r, p := newRedis(t, proc.URL(), RedisOptions{Backoff: 100 * time.Millisecond}, m)
	pt := newProcess(t, ProcessOptions{}, m)
	l := NewLayered(m, pt, r)
	n := 0
	read := func() (Result, error) {
		n++
		v, res, err := l.GetOrLoad(ctx, "L3", fmt.Sprint(p, "k", n), time.Minute,
			func(context.Context) ([]byte, error) { return []byte("v"), nil })
		if err == nil && string(v) != "v" {
			err = fmt.Errorf("value %q", v)
		}
		return res, err
	}
	if _, err := read(); err != nil {
		t.Fatal(err)
	}
	if requests(m, "redis", "L3", ResultMiss) != 1 {
		t.Fatal("redis not consulted while up")
	}

	if err := proc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := read(); err != nil {
			t.Fatalf("read %d with Redis down: %v", i, err)
		}
	}
	if got := requests(m, "redis", "L3", ResultError); got != 20 {
		t.Fatalf("redis errors %v, want 20 (one per read)", got)
	}
	if err := r.Healthy(ctx); err == nil {
		t.Fatal("Healthy with Redis stopped")
	}

	if err := proc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// No reconnect call: reads alone bring Redis back after the back-off.
	hitsBefore := requests(m, "redis", "L3", ResultMiss) + requests(m, "redis", "L3", ResultHit)
	eventually(t, "Redis to be used again", func() bool {
		if _, err := read(); err != nil {
			t.Fatal(err)
		}
		return requests(m, "redis", "L3", ResultMiss)+requests(m, "redis", "L3", ResultHit) > hitsBefore
	})
	// and values written now land in Redis.
	key := p + "after"
	_ = l.Set(ctx, key, []byte("back"), time.Minute)
	if v, err := r.Get(ctx, key); err != nil || string(v) != "back" {
		t.Fatalf("Redis after restart: %q %v", v, err)
	}
}
