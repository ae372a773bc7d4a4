package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// asyncPool processes ?async=true signals with a fixed number of workers
// and a bounded queue. A signal is saved pending before the 202, so a crash
// leaves it visible (pending) rather than lost; drain finishes the queue on
// shutdown.
type asyncPool struct {
	s       *Server
	jobs    chan asyncJob
	slots   chan struct{} // one per queued or running job
	perUser int           // one user's share of the slots

	userMu sync.Mutex
	users  map[string]int // queued or running jobs per user

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context // canceled when the drain deadline passes
	cancel context.CancelFunc

	// retryDelays are the waits between attempts of a failed final save.
	retryDelays []time.Duration

	queued   prometheus.GaugeFunc
	rejected prometheus.Counter // queue full, or a user's share used up
}

type asyncJob struct {
	sig store.Signal
	in  neuron.Input
}

func newAsyncPool(s *Server, workers, queue, perUser int) *asyncPool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &asyncPool{
		s: s, jobs: make(chan asyncJob, queue), slots: make(chan struct{}, queue),
		perUser: perUser, users: map[string]int{},
		ctx: ctx, cancel: cancel,
		retryDelays: []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1600 * time.Millisecond},
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_async_rejections_total",
			Help: "Async signals refused: 503 queue_full, or 429 when the user's share of the queue is used up.",
		}),
	}
	p.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hal9_async_queue_length",
		Help: "Async signals queued or being processed.",
	}, func() float64 { return float64(len(p.slots)) })
	for range workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *asyncPool) collectors() []prometheus.Collector {
	return []prometheus.Collector{p.queued, p.rejected}
}

func (p *asyncPool) work() {
	defer p.wg.Done()
	for j := range p.jobs {
		p.run(j)
		p.release(j.sig.UserID)
	}
}

// reserve takes a slot of the queue for user, within the user's share.
func (p *asyncPool) reserve(user string) *apiError {
	p.userMu.Lock()
	defer p.userMu.Unlock()
	if p.users[user] >= p.perUser {
		p.rejected.Inc()
		return &apiError{Status: http.StatusTooManyRequests, Code: CodeRateLimited, RetryAfter: time.Second,
			Msg: fmt.Sprintf("you already have %d async signals queued or running, your share of the queue (--async-queue-per-user); wait for them (GET /api/v1/signals/{id}) or send without async", p.users[user])}
	}
	select {
	case p.slots <- struct{}{}:
	default:
		p.rejected.Inc()
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeQueueFull,
			Msg: fmt.Sprintf("the async queue is full (%d signals); retry shortly or send without async", cap(p.slots)), RetryAfter: time.Second}
	}
	p.users[user]++
	return nil
}

func (p *asyncPool) release(user string) {
	p.userMu.Lock()
	defer p.userMu.Unlock()
	if p.users[user]--; p.users[user] <= 0 {
		delete(p.users, user)
	}
	<-p.slots
}

func (p *asyncPool) run(j asyncJob) {
	s := p.s
	ctx, cancel := context.WithTimeout(p.ctx, s.d.AsyncJobTimeout)
	defer cancel()
	res, perr := s.d.Router.Process(ctx, j.in)
	sig := j.sig
	complete(&sig, res, perr)
	hops, mems := records(sig, res)
	// The final save must happen even when the drain deadline cut the work;
	// a failed one is retried with backoff, else the signal would stay
	// pending until the next start fails it.
	if err := p.saveFinal(context.WithoutCancel(ctx), sig, hops, mems); err != nil {
		s.log.Error("save async signal: it stays pending until the next start marks it failed",
			"signal_id", sig.ID, "attempts", len(p.retryDelays)+1, "error", err)
	}
	if perr != nil {
		s.log.Warn("async signal failed", "signal_id", sig.ID, "error", perr)
	}
}

// saveFinal saves a finished async signal, retrying after each of
// p.retryDelays on failure.
func (p *asyncPool) saveFinal(ctx context.Context, sig store.Signal, hops []store.Hop, mems []store.Memory) error {
	err := p.s.save(ctx, sig, hops, mems)
	for i, d := range p.retryDelays {
		if err == nil {
			return nil
		}
		p.s.log.Warn("save async signal failed; retrying", "signal_id", sig.ID, "attempt", i+1, "retry_in", d, "error", err)
		time.Sleep(d)
		err = p.s.save(ctx, sig, hops, mems)
	}
	return err
}

// enqueue reserves a slot, saves the signal pending, and queues it.
func (p *asyncPool) enqueue(ctx context.Context, j asyncJob) (*apiError, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Msg: "the server is shutting down; send the signal to another instance", RetryAfter: 5 * time.Second}, nil
	}
	if e := p.reserve(j.sig.UserID); e != nil {
		return e, nil
	}
	if err := p.s.save(ctx, j.sig, nil, nil); err != nil {
		p.release(j.sig.UserID)
		return nil, err
	}
	p.jobs <- j // never blocks: a slot is held
	return nil, nil
}

// drain refuses new jobs and waits for the queued ones; at ctx's end the
// remaining work is canceled (and saved failed) and drain waits for that.
func (p *asyncPool) drain(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.jobs)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		p.cancel()
		<-done
		return fmt.Errorf("drain async signals: %w", ctx.Err())
	}
}

func (s *Server) acceptAsync(w http.ResponseWriter, r *http.Request, sig store.Signal, in neuron.Input) {
	e, err := s.async.enqueue(r.Context(), asyncJob{sig: sig, in: in})
	if err != nil {
		s.storeError(w, r, "save pending signal", err)
		return
	}
	if e != nil {
		e.write(w)
		return
	}
	w.Header().Set("Location", "/api/v1/signals/"+sig.ID)
	writeJSON(w, http.StatusAccepted, map[string]string{"signal_id": sig.ID, "status": store.SignalPending})
}
