package redislimits

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server/limits"
)

func TestMain(m *testing.M) { infratest.Main(m) }

// TestSharedAcrossClients: two clients (two replicas) on one Redis draw
// from the same bucket, and a peek (n 0) records nothing.
func TestSharedAcrossClients(t *testing.T) {
	url := infratest.RedisURL(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	a, b := redis.NewClient(opt), redis.NewClient(opt)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	ra, rb := limits.New(New(a), nil, nil), limits.New(New(b), nil, nil)
	l := limits.Limit{Rate: 1, Period: time.Hour, Burst: 3}
	for i, lim := range []*limits.Limiter{ra, rb, ra} {
		if ok, _ := lim.Check(ctx, "ip:192.0.2.1", l); !ok {
			t.Fatalf("check %d refused", i)
		}
		if ok, _ := lim.Take(ctx, "ip:192.0.2.1", l); !ok {
			t.Fatalf("take %d of the shared burst refused", i)
		}
	}
	if ok, wait := rb.Take(ctx, "ip:192.0.2.1", l); ok || wait < 59*time.Minute {
		t.Fatalf("the 4th event, from the other replica: %v, wait %v; want refused for about an hour", ok, wait)
	}
	if ok, _ := rb.Check(ctx, "ip:192.0.2.1", l); ok {
		t.Fatal("check after the burst was used allowed another")
	}
	if ok, _ := ra.Take(ctx, "ip:192.0.2.2", l); !ok {
		t.Fatal("another key shares the bucket")
	}
	if n, err := a.Exists(ctx, Prefix+"ip:192.0.2.1").Result(); err != nil || n != 1 {
		t.Fatalf("key not under the documented prefix: %v %v", n, err)
	}
	// A slot given back on one replica is free on the other; a bucket given
	// back to empty is deleted.
	ra.Give(ctx, "ip:192.0.2.1", l)
	if ok, _ := rb.Take(ctx, "ip:192.0.2.1", l); !ok {
		t.Fatal("the slot given back is still taken")
	}
	ra.Give(ctx, "ip:192.0.2.2", l)
	if n, _ := a.Exists(ctx, Prefix+"ip:192.0.2.2").Result(); n != 0 {
		t.Fatal("a bucket given back to empty is still kept")
	}
}
