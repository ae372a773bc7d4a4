// Package cache provides HAL9's response and record caches: an in-process
// tier, a Redis tier, the two composed (process -> Redis), coalescing of
// identical in-flight work, and the cache-aside, write-through and
// write-behind strategies.
package cache

import (
	"context"
	"errors"
	"time"
)

// ErrMiss is returned by Tier.Get when the key is absent or expired.
var ErrMiss = errors.New("cache miss")

// Tier is one level of the cache.
type Tier interface {
	// Name labels the tier in metrics and traces: "process" or "redis".
	Name() string
	// Get returns the value or ErrMiss; any other error means the tier failed.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores the value for ttl (0 means the tier's default).
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Delete(ctx context.Context, key string) error
}
