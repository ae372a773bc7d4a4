package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLayeredBackfillAndTiers(t *testing.T) {
	ctx := context.Background()
	m := newTestMetrics()
	top, low := newMapTier("process"), newMapTier("redis")
	l := NewLayered(m, top, low)
	var mu sync.Mutex
	calls := 0

	// miss everywhere: load, fill both tiers.
	v, res, err := l.GetOrLoad(ctx, "L2", "k1", time.Minute, loadValue("v1", &calls, &mu))
	if err != nil || string(v) != "v1" || res.Hit || res.Tier != "" || calls != 1 {
		t.Fatalf("miss: %q %+v %v calls %d", v, res, err, calls)
	}
	if !top.has("k1") || !low.has("k1") {
		t.Fatal("load did not fill both tiers")
	}
	// process hit.
	_, res, _ = l.GetOrLoad(ctx, "L2", "k1", time.Minute, loadValue("x", &calls, &mu))
	if res != (Result{Hit: true, Tier: "process"}) || calls != 1 {
		t.Fatalf("second read: %+v calls %d", res, calls)
	}
	// lower-tier hit backfills the top.
	_ = low.Set(ctx, "k2", []byte("v2"), 0)
	v, res, _ = l.GetOrLoad(ctx, "L3", "k2", time.Minute, loadValue("x", &calls, &mu))
	if string(v) != "v2" || res != (Result{Hit: true, Tier: "redis"}) || calls != 1 {
		t.Fatalf("redis hit: %q %+v calls %d", v, res, calls)
	}
	if !top.has("k2") {
		t.Fatal("redis hit did not backfill the process tier")
	}
	for _, c := range []struct {
		tier, layer, result string
		want                float64
	}{
		{"process", "L2", ResultMiss, 1}, {"process", "L2", ResultHit, 1}, {"redis", "L2", ResultMiss, 1},
		{"process", "L3", ResultMiss, 1}, {"redis", "L3", ResultHit, 1},
	} {
		if got := requests(m, c.tier, c.layer, c.result); got != c.want {
			t.Errorf("requests{%s,%s,%s} = %v, want %v", c.tier, c.layer, c.result, got, c.want)
		}
	}

	// load errors pass through and are not cached.
	boom := errors.New("llm down")
	if _, _, err := l.GetOrLoad(ctx, "L1", "k3", time.Minute, func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("load error: %v", err)
	}
	if top.has("k3") || low.has("k3") {
		t.Fatal("a failed load was cached")
	}
}

func TestLayeredTierErrorsAreMisses(t *testing.T) {
	ctx := context.Background()
	m := newTestMetrics()
	top, low := newMapTier("process"), newMapTier("redis")
	low.setFail(true)
	l := NewLayered(m, top, low)
	var mu sync.Mutex
	calls := 0
	for i := range 3 {
		v, _, err := l.GetOrLoad(ctx, "L4", "k", time.Minute, loadValue("v", &calls, &mu))
		if err != nil || string(v) != "v" {
			t.Fatalf("read %d with redis down: %q %v", i, v, err)
		}
		_ = top.Delete(ctx, "k") // force the lower tier to be asked again
	}
	if got := requests(m, "redis", "L4", ResultError); got != 3 {
		t.Fatalf("redis errors counted %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.WriteErrors.WithLabelValues("redis")); got != 3 {
		t.Fatalf("redis write errors %v, want 3", got)
	}
	// plain Get/Set/Delete keep working on the healthy tier.
	if err := l.Set(ctx, "r", []byte("rec"), 0); err == nil {
		t.Fatal("Set hid the tier failure from its caller")
	}
	if v, err := l.Get(ctx, "r"); err != nil || string(v) != "rec" {
		t.Fatalf("Get after partial Set: %q %v", v, err)
	}
	low.setFail(false)
	_ = l.Delete(ctx, "r")
	if _, err := l.Get(ctx, "r"); !errors.Is(err, ErrMiss) {
		t.Fatalf("Get after Delete: %v, want ErrMiss", err)
	}
}

func TestLayeredLookupBackfills(t *testing.T) {
	ctx := context.Background()
	top, low := newMapTier("process"), newMapTier("redis")
	l := NewLayered(nil, top, low)
	_ = low.Set(ctx, SignalKey("s1"), []byte("sig"), 0)
	v, res, err := l.Lookup(ctx, "signal", SignalKey("s1"), time.Minute)
	if err != nil || string(v) != "sig" || res.Tier != "redis" || !top.has(SignalKey("s1")) {
		t.Fatalf("Lookup: %q %+v %v", v, res, err)
	}
	if _, _, err := l.Lookup(ctx, "signal", "hal9:none", time.Minute); !errors.Is(err, ErrMiss) {
		t.Fatalf("Lookup of absent key: %v", err)
	}
}

// N concurrent readers of one missing key while its load is blocked: the
// load runs once, everyone gets its value, N-1 are counted as coalesced.
func TestLayeredCoalescing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		m := newTestMetrics()
		top, low := newMapTier("process"), newMapTier("redis")
		l := NewLayered(m, top, low)
		release := make(chan struct{})
		var mu sync.Mutex
		loads := 0
		load := func(ctx context.Context) ([]byte, error) {
			mu.Lock()
			loads++
			mu.Unlock()
			<-release
			return []byte("answer"), nil
		}
		type out struct {
			v   string
			res Result
			err error
		}
		results := make(chan out, n)
		for range n {
			go func() {
				v, res, err := l.GetOrLoad(context.Background(), "L5", "same", time.Minute, load)
				results <- out{string(v), res, err}
			}()
		}
		synctest.Wait() // every reader is blocked: one in load, the rest waiting for it
		close(release)
		coalesced := 0
		for range n {
			o := <-results
			if o.err != nil || o.v != "answer" {
				t.Fatalf("reader got %q %v", o.v, o.err)
			}
			if o.res.Coalesced {
				coalesced++
			}
		}
		if loads != 1 {
			t.Fatalf("load called %d times, want 1", loads)
		}
		if coalesced != n-1 {
			t.Fatalf("%d coalesced, want %d", coalesced, n-1)
		}
		if got := testutil.ToFloat64(m.Coalesced.WithLabelValues("L5")); got != n-1 {
			t.Fatalf("coalesced counter %v, want %d", got, n-1)
		}
		if low.gets != 1 {
			t.Fatalf("redis asked %d times, want once (by the leader)", low.gets)
		}
	})
}

// A waiting reader whose context ends returns at once; the load goes on for
// the others.
func TestLayeredWaiterCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLayered(nil, newMapTier("process"))
		release := make(chan struct{})
		load := func(ctx context.Context) ([]byte, error) { <-release; return []byte("v"), nil }
		done := make(chan error, 1)
		go func() {
			_, _, err := l.GetOrLoad(context.Background(), "L1", "k", time.Minute, load)
			done <- err
		}()
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, _, err := l.GetOrLoad(ctx, "L1", "k", time.Minute, load); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiter: %v, want DeadlineExceeded", err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("leader: %v", err)
		}
	})
}

// TestLayeredAbandonedLoadIsCancelled: when every caller waiting for a
// load has left, the load's context ends (an LLM call no one will read
// stops spending), and a later caller starts a fresh load.
func TestLayeredAbandonedLoadIsCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLayered(nil, newMapTier("process"))
		canceled := make(chan error, 1)
		block := func(ctx context.Context) ([]byte, error) { <-ctx.Done(); canceled <- ctx.Err(); return nil, ctx.Err() }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 2)
		for range 2 { // the leader and one waiter
			go func() { _, _, err := l.GetOrLoad(ctx, "L3", "k", time.Minute, block); done <- err }()
		}
		synctest.Wait()
		select {
		case <-canceled:
			t.Fatal("the load was cancelled while its callers waited")
		default:
		}
		cancel()
		for range 2 {
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("caller: %v", err)
			}
		}
		if err := <-canceled; !errors.Is(err, context.Canceled) {
			t.Fatalf("the abandoned load ended with %v, want context.Canceled", err)
		}
		v, _, err := l.GetOrLoad(context.Background(), "L3", "k", time.Minute, func(context.Context) ([]byte, error) { return []byte("fresh"), nil })
		if err != nil || string(v) != "fresh" {
			t.Fatalf("a caller after the abandoned load: %q %v", v, err)
		}
	})
}

func TestKeys(t *testing.T) {
	k := LLMKey("L2", "impl-1", "hello")
	if k != "hal9:llm:L2:impl-1:2cf24dba5fb0a30e26e83b2ac5b9e29e" {
		t.Fatalf("LLMKey = %s", k)
	}
	if LLMKey("L2", "impl-1", "hello!") == k || LLMKey("L3", "impl-1", "hello") == k {
		t.Fatal("keys collide across content or layer")
	}
	for got, want := range map[string]string{
		NeuronStateKey("n1"): "hal9:neuron:n1:state",
		SignalKey("s1"):      "hal9:signal:s1",
	} {
		if got != want {
			t.Errorf("%s, want %s", got, want)
		}
	}
	if mk := MemorySearchKey("u1", "q=cache"); len(mk) != len("hal9:memory:search:u1:")+32 {
		t.Errorf("MemorySearchKey = %s", mk)
	}
	if MemorySearchKey("alice", "q=cache") == MemorySearchKey("mallory", "q=cache") {
		t.Error("MemorySearchKey ignores the user: one user's cached search would be served to another")
	}
	ttl := DefaultTTLs()
	if ttl["L2"] != 10*time.Minute || ttl["L3"] != 5*time.Minute || ttl["L4"] != 2*time.Minute || len(ttl) != 5 {
		t.Errorf("DefaultTTLs = %v", ttl)
	}
	ttl["L1"] = time.Hour
	if DefaultTTLs()["L1"] != 30*time.Second {
		t.Error("DefaultTTLs shares its map")
	}
}
