package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultHashQueueWait is about how long a login may wait for a bcrypt
// worker before it is refused with ErrBusy instead: the default queue holds
// as many hashes as the workers get through in that time, and at least
// minQueuePerWorker per worker, so ordinary bursts of logins queue briefly
// while a flood is refused.
const DefaultHashQueueWait = time.Second

// minQueuePerWorker and maxHashQueue bound the derived queue (a slow
// machine measures slow hashes; cheap ones, cost 4, would give thousands).
const (
	minQueuePerWorker = 8
	maxHashQueue      = 256
)

// hashPool runs bcrypt, the one deliberately slow thing on the request
// path, on a bounded number of workers with a short queue. A flood of
// logins (right or wrong passwords) can then take at most those workers'
// CPU and is answered ErrBusy at once beyond the queue, instead of piling
// up goroutines that each wait their turn for seconds.
type hashPool struct {
	admit chan struct{} // workers + queue places
	run   chan struct{} // workers
	busy  prometheus.Counter
}

// newHashPool sizes the pool; took is the time one hash took at start.
func newHashPool(workers, queue int, took time.Duration, reg prometheus.Registerer) (*hashPool, error) {
	if workers < 0 || queue < 0 {
		return nil, fmt.Errorf("auth: hash workers (%d) and queue (%d) must not be negative", workers, queue)
	}
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if queue == 0 {
		per := max(took, time.Millisecond)
		queue = min(max(int(DefaultHashQueueWait/per)*workers, minQueuePerWorker*workers), maxHashQueue)
	}
	busy := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hal9_auth_busy_total",
		Help: "Logins and registrations refused with 503 because every bcrypt worker and queue place was taken.",
	})
	if reg != nil {
		if err := reg.Register(busy); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("auth: register metrics: %w", err)
			}
			busy = are.ExistingCollector.(prometheus.Counter)
		}
	}
	return &hashPool{admit: make(chan struct{}, workers+queue), run: make(chan struct{}, workers), busy: busy}, nil
}

// do runs fn on a worker, waiting in the queue when all are busy; ErrBusy
// at once when the queue is full too.
func (p *hashPool) do(ctx context.Context, fn func()) error {
	select {
	case p.admit <- struct{}{}:
	default:
		p.busy.Inc()
		return ErrBusy
	}
	defer func() { <-p.admit }()
	select {
	case p.run <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.run }()
	fn()
	return nil
}
