package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
)

func TestMain(m *testing.M) { infratest.Main(m) }

func redisThrough(t *testing.T) (*Proxy, *redis.Client) {
	t.Helper()
	p, u, err := ThroughProxy("redis", infratest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	o.ReadTimeout, o.WriteTimeout, o.DialTimeout, o.MaxRetries, o.DialerRetries = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, -1, 1
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return p, c
}

// The network faults against a real Redis through the proxy: each one
// does what it says while it lasts, and the link works again after it.
func TestProxyRedis(t *testing.T) {
	p, c := redisThrough(t)
	ctx := context.Background()
	ping := func() (time.Duration, error) {
		start := time.Now()
		err := c.Ping(ctx).Err()
		return time.Since(start), err
	}
	if _, err := ping(); err != nil {
		t.Fatalf("through the proxy, no fault: %v", err)
	}
	for _, c := range []struct {
		spec Spec
		want func(time.Duration, error) bool
		what string
	}{
		{Spec{Kind: "latency", Backend: Redis, Latency: 120 * time.Millisecond}, func(d time.Duration, err error) bool { return err == nil && d >= 120*time.Millisecond }, "a PING of at least 120 ms"},
		{Spec{Kind: "reset", Backend: Redis}, func(_ time.Duration, err error) bool { return err != nil }, "an error"},
		{Spec{Kind: "blackhole", Backend: Redis}, func(_ time.Duration, err error) bool { return err != nil && strings.Contains(err.Error(), "timeout") }, "a timeout"},
	} {
		if err := p.Inject(c.spec); err != nil {
			t.Fatal(err)
		}
		d, err := ping()
		if !c.want(d, err) {
			t.Errorf("%s: PING took %s, error %v; want %s", c.spec.Kind, d, err, c.what)
		}
		if err := p.Heal(ctx, c.spec); err != nil {
			t.Fatal(err)
		}
		var after error
		for i := 0; i < 20; i++ { // the client drops the broken connection, then dials again
			if _, after = ping(); after == nil {
				break
			}
		}
		if after != nil {
			t.Errorf("%s healed: PING still fails: %v", c.spec.Kind, after)
		}
	}
	// Bandwidth: 8 KB at 4 KB/s takes about two seconds.
	if err := c.Set(ctx, "big", strings.Repeat("x", 8<<10), 0).Err(); err != nil {
		t.Fatal(err)
	}
	bw := Spec{Kind: "bandwidth", Backend: Redis, KBps: 4}
	if err := p.Inject(bw); err != nil {
		t.Fatal(err)
	}
	slow := redis.NewClient(&redis.Options{Addr: p.Addr(), DB: c.Options().DB, ReadTimeout: 5 * time.Second})
	defer slow.Close()
	start := time.Now()
	if err := slow.Get(ctx, "big").Err(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("8 KB through a 4 KB/s cap took %s, want over a second", d)
	}
	if err := p.Heal(ctx, bw); err != nil {
		t.Fatal(err)
	}
}

func TestProxyPostgres(t *testing.T) {
	p, u, err := ThroughProxy("postgres", infratest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	defer conn.Close(ctx)
	lat := Spec{Kind: "latency", Backend: Postgres, Latency: 100 * time.Millisecond}
	if err := p.Inject(lat); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Errorf("SELECT 1 with 100 ms of latency: %v in %s", err, time.Since(start))
	}
	_ = p.Heal(ctx, lat)
	reset := Spec{Kind: "reset", Backend: Postgres}
	if err := p.Inject(reset); err != nil {
		t.Fatal(err)
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = conn.Exec(qctx, "SELECT 1")
	cancel()
	if err == nil {
		t.Error("SELECT 1 through a resetting link succeeded")
	}
	_ = p.Heal(ctx, reset)
	again, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("reconnect after the resets: %v", err)
	}
	defer again.Close(ctx)
	if _, err := again.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("after the heal: %v", err)
	}
}
