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

	leftMu sync.Mutex
	left   []string // jobs never started before the drain deadline: failed in one write

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

// afterDrain bounds each write the drain makes past its deadline: the
// final save of a job cut mid-run (one attempt, no retries) and the one
// write failing the jobs never started. With a frozen database a shutdown
// then ends at most about 2 × afterDrain past --shutdown-timeout (those
// signals stay pending; the next start's sweep fails them).
const afterDrain = 2 * time.Second

func (p *asyncPool) work() {
	defer p.wg.Done()
	for j := range p.jobs {
		if p.ctx.Err() != nil { // past the drain deadline: left for one write
			p.leave(j)
			continue
		}
		p.run(j)
		p.release(j.sig.UserID)
	}
}

// leave records a job the drain deadline cut before it started.
func (p *asyncPool) leave(j asyncJob) {
	p.leftMu.Lock()
	p.left = append(p.left, j.sig.ID)
	p.leftMu.Unlock()
	p.release(j.sig.UserID)
}

// failLeft marks the jobs never started failed, in one write (1,024 queued
// jobs saved one by one, each with its retries, kept a shutdown going for
// an hour and a half against a frozen database).
func (p *asyncPool) failLeft() {
	p.leftMu.Lock()
	ids := p.left
	p.left = nil
	p.leftMu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), afterDrain)
	defer cancel()
	n, err := p.s.d.Store.FailSignals(ctx, ids)
	if err != nil {
		p.s.log.Error("fail the async signals the shutdown cut before they started: they stay pending until the next start marks them failed",
			"signals", len(ids), "error", err)
		return
	}
	p.s.log.Warn("async signals cut by the shutdown before they started, saved failed", "signals", n)
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
	// pending until the next start fails it. Past the drain deadline it has
	// afterDrain more and no new attempt: the shutdown must end.
	saveCtx, cancelSave := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSave()
	stop := context.AfterFunc(p.ctx, func() { time.AfterFunc(afterDrain, cancelSave) })
	defer stop()
	if err := p.saveFinal(saveCtx, sig, hops, mems); err != nil {
		s.log.Error("save async signal: it stays pending until the next start marks it failed",
			"signal_id", sig.ID, "error", err)
	}
	if perr != nil {
		s.log.Warn("async signal failed", "signal_id", sig.ID, "error", perr)
	}
}

// saveFinal saves a finished async signal, retrying after each of
// p.retryDelays on failure until the drain deadline.
func (p *asyncPool) saveFinal(ctx context.Context, sig store.Signal, hops []store.Hop, mems []store.Memory) error {
	err := p.s.saveWithin(ctx, sig, hops, mems)
	for i, d := range p.retryDelays {
		if err == nil || ctx.Err() != nil || p.ctx.Err() != nil {
			return err
		}
		p.s.log.Warn("save async signal failed; retrying", "signal_id", sig.ID, "attempt", i+1, "retry_in", d, "error", err)
		time.Sleep(d)
		err = p.s.saveWithin(ctx, sig, hops, mems)
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

// drain refuses new jobs and waits for the queued ones. At ctx's end the
// running jobs are canceled and saved failed (one attempt each), the jobs
// never started are failed in one write, and drain returns within about
// 2 × afterDrain, however slow the database.
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
		for j := range p.jobs { // the workers leave what they take now, too
			p.leave(j)
		}
		<-done
		p.failLeft()
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
