package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// asyncPool processes ?async=true signals with a bounded queue and
// between minWorkers and maxWorkers workers. A signal is saved pending
// before the 202, so a crash leaves it visible (pending) rather than lost;
// drain finishes the queue on shutdown.
//
// The pool sizes itself from its own queue: a job queued while no worker
// is idle (it would wait) starts one more worker, up to maxWorkers; a
// worker idle for idleTimeout retires while more than minWorkers run. In
// steady state the pool then holds what Little's law asks for, arrival
// rate × job duration (55 async signals/s of ~0.5 s each: ~28 workers),
// where a fixed 8 workers served at most 8 ÷ 0.5 s = 16/s and the queue
// filled (503 queue_full) with the CPU idle. Past maxWorkers jobs wait in
// the queue (hal9_async_queue_wait_seconds rises) and, once it is full,
// are refused.
type asyncPool struct {
	s          *Server
	jobs       chan asyncJob
	slots      chan struct{} // one per queued or running job
	perUser    int           // one user's share of the slots
	minWorkers int
	maxWorkers int
	// idleTimeout is how long a worker above minWorkers waits for a job
	// before it retires.
	idleTimeout time.Duration

	// runJob processes one job (p.run; tests put a stand-in here).
	runJob func(asyncJob)

	workers atomic.Int64 // running worker goroutines
	idle    atomic.Int64 // workers waiting for a job

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

	queued      prometheus.GaugeFunc
	rejected    prometheus.Counter // queue full, or a user's share used up
	workerGauge prometheus.Collector
	wait        prometheus.Histogram // enqueue to a worker taking the job
	duration    prometheus.Histogram // a job's run, final save included
}

type asyncJob struct {
	sig    store.Signal
	in     neuron.Input
	queued time.Time // when it entered the queue
}

// DefaultAsyncWorkersMax is --async-workers-max's default: 256 workers
// hold 512 async signals/s of 0.5 s each (a worker costs a goroutine
// while its LLM call is in flight).
const DefaultAsyncWorkersMax = 256

// asyncIdleTimeout is how long a worker above the minimum stays idle
// before it retires.
const asyncIdleTimeout = 30 * time.Second

// newAsyncPool makes a pool that start gives minWorkers workers; up to
// maxWorkers run when jobs would otherwise wait (maxWorkers < minWorkers counts as minWorkers).
func newAsyncPool(s *Server, minWorkers, maxWorkers, queue, perUser int) *asyncPool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &asyncPool{
		s: s, jobs: make(chan asyncJob, queue), slots: make(chan struct{}, queue),
		perUser: perUser, users: map[string]int{},
		minWorkers: minWorkers, maxWorkers: max(minWorkers, maxWorkers), idleTimeout: asyncIdleTimeout,
		ctx: ctx, cancel: cancel,
		retryDelays: []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1600 * time.Millisecond},
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_async_rejections_total",
			Help: "Async signals refused: 503 queue_full, or 429 when the user's share of the queue is used up.",
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hal9_async_queue_wait_seconds",
			Help:    "Time an async signal waited in the queue for a worker (it rises once the pool is at --async-workers-max).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 11), // 0.1 ms … ~105 s
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hal9_async_job_duration_seconds",
			Help:    "Time a worker spent on one async signal: its LLM calls and its final save (Little's law: workers needed = arrival rate × this).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12), // 1 ms … ~24 s
		}),
	}
	p.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hal9_async_queue_length",
		Help: "Async signals queued or being processed.",
	}, func() float64 { return float64(len(p.slots)) })
	p.runJob = p.run
	p.workerGauge = asyncWorkersCollector{p}
	return p
}

// start starts the minimum of workers.
func (p *asyncPool) start() *asyncPool {
	for range p.minWorkers {
		p.startWorker()
	}
	return p
}

func (p *asyncPool) collectors() []prometheus.Collector {
	return []prometheus.Collector{p.queued, p.rejected, p.workerGauge, p.wait, p.duration}
}

// asyncWorkersCollector exports hal9_async_workers{state} and
// hal9_async_workers_max.
type asyncWorkersCollector struct{ p *asyncPool }

var (
	asyncWorkersDesc = prometheus.NewDesc("hal9_async_workers",
		"Async signal workers running, by state (busy: on a job; idle: waiting for one).", []string{"state"}, nil)
	asyncWorkersMaxDesc = prometheus.NewDesc("hal9_async_workers_max",
		"The most async signal workers the pool may run (--async-workers-max).", nil, nil)
)

func (c asyncWorkersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- asyncWorkersDesc
	ch <- asyncWorkersMaxDesc
}

func (c asyncWorkersCollector) Collect(ch chan<- prometheus.Metric) {
	n, idle := c.p.workers.Load(), c.p.idle.Load()
	idle = min(max(idle, 0), n)
	ch <- prometheus.MustNewConstMetric(asyncWorkersDesc, prometheus.GaugeValue, float64(n-idle), "busy")
	ch <- prometheus.MustNewConstMetric(asyncWorkersDesc, prometheus.GaugeValue, float64(idle), "idle")
	ch <- prometheus.MustNewConstMetric(asyncWorkersMaxDesc, prometheus.GaugeValue, float64(c.p.maxWorkers))
}

// startWorker starts one worker. Callers hold p.mu for reading with the
// pool open (or are start), so drain's wg.Wait never races an Add.
func (p *asyncPool) startWorker() {
	p.workers.Add(1)
	p.wg.Add(1)
	go p.work()
}

// grow starts a worker when a job waits and no worker is idle to take it,
// up to maxWorkers. Called with p.mu held for reading, the pool open.
func (p *asyncPool) grow() {
	if p.idle.Load() >= int64(len(p.jobs)) {
		return // enough idle workers for what is queued
	}
	for {
		n := p.workers.Load()
		if n >= int64(p.maxWorkers) {
			return
		}
		if p.workers.CompareAndSwap(n, n+1) {
			p.wg.Add(1)
			go p.work()
			return
		}
	}
}

// retire ends an idle worker while more than minWorkers run.
func (p *asyncPool) retire() bool {
	for {
		n := p.workers.Load()
		if n <= int64(p.minWorkers) {
			return false
		}
		if p.workers.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// afterDrain bounds each write the drain makes past its deadline: the
// final save of a job cut mid-run (one attempt, no retries) and the one
// write failing the jobs never started. With a frozen database a shutdown
// then ends at most about 2 × afterDrain past --shutdown-timeout (those
// signals stay pending; the next start's sweep fails them).
const afterDrain = 2 * time.Second

func (p *asyncPool) work() {
	defer p.wg.Done()
	idle := time.NewTimer(p.idleTimeout)
	defer idle.Stop()
	for {
		p.idle.Add(1)
		select {
		case j, ok := <-p.jobs:
			p.idle.Add(-1)
			if !ok {
				p.workers.Add(-1)
				return
			}
			p.take(j)
		case <-idle.C:
			p.idle.Add(-1)
			if len(p.jobs) == 0 && p.retire() {
				return
			}
		}
		idle.Reset(p.idleTimeout)
	}
}

// take runs one job taken from the queue.
func (p *asyncPool) take(j asyncJob) {
	if p.ctx.Err() != nil { // past the drain deadline: left for one write
		p.leave(j)
		return
	}
	start := time.Now()
	if !j.queued.IsZero() {
		p.wait.Observe(start.Sub(j.queued).Seconds())
	}
	p.runJob(j)
	p.duration.Observe(time.Since(start).Seconds())
	p.release(j.sig.UserID)
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
	j.queued = time.Now()
	p.jobs <- j // never blocks: a slot is held
	p.grow()
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
