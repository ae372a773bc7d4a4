package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// mapTier is a fake Tier: a map, with failure injection and read counting.
type mapTier struct {
	name string
	mu   sync.Mutex
	data map[string][]byte
	fail bool
	gets int
}

var errTierDown = errors.New("tier down")

func newMapTier(name string) *mapTier { return &mapTier{name: name, data: map[string][]byte{}} }

func (t *mapTier) Name() string { return t.name }

func (t *mapTier) Get(_ context.Context, key string) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gets++
	if t.fail {
		return nil, errTierDown
	}
	v, ok := t.data[key]
	if !ok {
		return nil, ErrMiss
	}
	return v, nil
}

func (t *mapTier) Set(_ context.Context, key string, val []byte, _ time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail {
		return errTierDown
	}
	t.data[key] = val
	return nil
}

func (t *mapTier) Delete(_ context.Context, key string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail {
		return errTierDown
	}
	delete(t.data, key)
	return nil
}

func (t *mapTier) has(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.data[key]
	return ok
}

func (t *mapTier) setFail(f bool) {
	t.mu.Lock()
	t.fail = f
	t.mu.Unlock()
}

func newTestMetrics() *Metrics { return NewMetrics(prometheus.NewRegistry()) }

func requests(m *Metrics, tier, layer, result string) float64 {
	return testutil.ToFloat64(m.Requests.WithLabelValues(tier, layer, result))
}

// eventually polls cond every 5 ms until it holds or a bounded deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func loadValue(v string, calls *int, mu *sync.Mutex) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		mu.Lock()
		*calls++
		mu.Unlock()
		return []byte(v), nil
	}
}
