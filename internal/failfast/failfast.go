// Package failfast puts a short circuit breaker (gobreaker) in front of a
// shared backend that has a local fallback, such as Redis behind the
// credential limits and the LLM spend ledger: while the backend keeps
// failing or hanging, callers go to their fallback at once instead of
// waiting out a timeout on every call.
package failfast

import (
	"context"
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Trip is how many failures in a row open a breaker; OpenFor how long it
// stays open before one call probes the backend again.
const (
	Trip    = 3
	OpenFor = 5 * time.Second
)

// ErrOpen is returned without calling the backend while the breaker is
// open (or its probe is in flight).
var ErrOpen = errors.New("backend skipped: it failed repeatedly; retried shortly")

// Breaker guards calls to one backend.
type Breaker struct {
	cb *gobreaker.CircuitBreaker[struct{}]
}

// callerGone marks an error that happened after the caller's own context
// ended: not the backend's failure.
type callerGone struct{ error }

func (e callerGone) Unwrap() error { return e.error }

// New returns a closed breaker; onChange (may be nil) hears its state
// changes (0 closed, 1 half-open, 2 open) under the breaker's lock.
func New(name string, onChange func(state int)) *Breaker {
	return &Breaker{cb: gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= Trip },
		IsExcluded: func(err error) bool {
			var g callerGone
			return errors.As(err, &g)
		},
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if onChange != nil {
				onChange(int(to))
			}
		},
	})}
}

// Do calls fn through the breaker (fn keeps its results in its closure):
// ErrOpen at once while the breaker is open.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	_, err := b.cb.Execute(func() (struct{}, error) {
		err := fn(ctx)
		if err != nil && ctx.Err() != nil {
			return struct{}{}, callerGone{err}
		}
		return struct{}{}, err
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return ErrOpen
	}
	return err
}

// Open reports whether calls are being skipped now.
func (b *Breaker) Open() bool { return b.cb.State() == gobreaker.StateOpen }
