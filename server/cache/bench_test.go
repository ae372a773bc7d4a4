package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
)

// BenchmarkGetOrLoad compares a process-tier hit, a Redis-tier hit (process
// tier absent, so every read goes to Redis) and a miss (trivial loader,
// fresh key each time, filling the process tier).
func BenchmarkGetOrLoad(b *testing.B) {
	ctx := context.Background()
	val := make([]byte, 1024) // about an L2 answer
	load := func(context.Context) ([]byte, error) { return val, nil }

	b.Run("process-hit", func(b *testing.B) {
		p := newProcess(b, ProcessOptions{}, newTestMetrics())
		l := NewLayered(newTestMetrics(), p)
		_ = p.Set(ctx, "k", val, time.Hour)
		p.Wait()
		b.ReportAllocs()
		for b.Loop() {
			if _, res, _ := l.GetOrLoad(ctx, "L2", "k", time.Hour, load); res.Tier != "process" {
				b.Fatal("not a process hit")
			}
		}
	})
	b.Run("redis-hit", func(b *testing.B) {
		r, p := newRedis(b, infratest.RedisURL(b), RedisOptions{}, nil)
		l := NewLayered(newTestMetrics(), r)
		if err := r.Set(ctx, p+"k", val, time.Hour); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, res, _ := l.GetOrLoad(ctx, "L2", p+"k", time.Hour, load); res.Tier != "redis" {
				b.Fatal("not a redis hit")
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		p := newProcess(b, ProcessOptions{}, newTestMetrics())
		l := NewLayered(newTestMetrics(), p)
		keys := make([]string, b.N+1)
		for i := range keys {
			keys[i] = fmt.Sprint("miss:", i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, res, _ := l.GetOrLoad(ctx, "L2", keys[i], time.Hour, load); res.Hit {
				b.Fatal("hit")
			}
		}
	})
}
