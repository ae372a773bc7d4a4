package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Layers are the neuron layers; each has its own breaker "llm_<layer>".
var Layers = []string{"L1", "L2", "L3", "L4", "L5"}

// BreakerOptions configure the per-layer circuit breakers. Zero values take
// the seed's numbers: open after 5 failures within 60 s, stay open 60 s,
// close after 3 successes in half-open.
type BreakerOptions struct {
	Failures  uint32        // failures within Interval that open the breaker (5)
	Interval  time.Duration // the closed-state counting window (60 s)
	Buckets   int           // the window rolls in this many steps (6: 10 s each); 1 = fixed window
	OpenFor   time.Duration // open → half-open after this (60 s; gobreaker's Timeout)
	Successes uint32        // half-open successes that close it (3; also the trial calls let through)
	// RateLimitStorm is how many 429s in a row a layer takes in its stride
	// (10): a few are the provider pacing us and open nothing; past them
	// every further 429 is a failure, so a 429 storm opens the breaker and
	// sheds the load instead of hammering the provider (see excluded).
	RateLimitStorm uint32
}

func (o BreakerOptions) withDefaults() BreakerOptions {
	if o.Failures == 0 {
		o.Failures = 5
	}
	if o.Interval <= 0 {
		o.Interval = 60 * time.Second
	}
	if o.Buckets <= 0 {
		o.Buckets = 6
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 60 * time.Second
	}
	if o.Successes == 0 {
		o.Successes = 3
	}
	if o.RateLimitStorm == 0 {
		o.RateLimitStorm = 10
	}
	return o
}

// GuardOptions configure a Guard.
type GuardOptions struct {
	Timeout      time.Duration // per call (30 s, seed 004)
	Breaker      BreakerOptions
	Metrics      *Metrics     // nil: no metrics
	Ledger       *Ledger      // nil: no ledger
	Logger       *slog.Logger // nil: discard
	DefaultModel string       // for requests without Model (DefaultModel)
	// DefaultMaxTokens is the provider's max_tokens for requests without
	// MaxTokens (1024, as the Messages-API provider): the reservation's
	// output tokens.
	DefaultMaxTokens int
}

// Guard is the Provider the server uses: it wraps any provider with a
// per-call timeout, a circuit breaker per layer, metrics and the cost ledger.
//
// Breaker accounting: API errors, transport errors and Guard timeouts are
// failures (counted apart in hal9_circuit_breaker_failures_total{kind} and
// by outcome label); rate limiting, the caller's own cancellation or
// deadline, and request-specific 4xx (400, 404, 413, 422) are neither
// success nor failure.
type Guard struct {
	p        Provider
	opts     GuardOptions
	log      *slog.Logger
	breakers map[string]*gobreaker.CircuitBreaker[Response]
	// limited counts each layer's 429s in a row (reset by any other outcome).
	limited map[string]*atomic.Uint32
}

var _ Provider = (*Guard)(nil)

// NewGuard wraps p.
func NewGuard(p Provider, opts GuardOptions) *Guard {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.DefaultModel == "" {
		opts.DefaultModel = DefaultModel
	}
	if opts.DefaultMaxTokens <= 0 {
		opts.DefaultMaxTokens = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	bo := opts.Breaker.withDefaults()
	opts.Breaker = bo
	g := &Guard{p: p, opts: opts, log: opts.Logger, breakers: map[string]*gobreaker.CircuitBreaker[Response]{}, limited: map[string]*atomic.Uint32{}}
	for _, layer := range Layers {
		name := "llm_" + layer
		inRow := &atomic.Uint32{}
		g.limited[layer] = inRow
		g.breakers[layer] = gobreaker.NewCircuitBreaker[Response](gobreaker.Settings{
			Name:         name,
			MaxRequests:  bo.Successes,
			Interval:     bo.Interval,
			BucketPeriod: bucketPeriod(bo),
			Timeout:      bo.OpenFor,
			ReadyToTrip:  func(c gobreaker.Counts) bool { return c.TotalFailures >= bo.Failures },
			IsExcluded: func(err error) bool {
				if errors.Is(err, ErrRateLimited) && inRow.Load() > bo.RateLimitStorm {
					return false // a storm: a failure
				}
				return excluded(err)
			},
			OnStateChange: func(name string, from, to gobreaker.State) {
				// Called under the breaker's lock: only cheap work here.
				g.log.Warn("circuit breaker state change", "breaker", name, "from", from.String(), "to", to.String())
				if opts.Metrics != nil {
					opts.Metrics.BreakerState.WithLabelValues(name).Set(float64(to))
				}
			},
		})
		if opts.Metrics != nil {
			opts.Metrics.BreakerState.WithLabelValues(name).Set(0)
			for _, kind := range []string{"timeout", "api_error", "rate_limited", "other"} {
				opts.Metrics.BreakerFailures.WithLabelValues(name, kind)
			}
		}
	}
	if opts.Metrics != nil {
		// Zero series for the default model, so cost and token panels read
		// $0 on a fresh server instead of "No data".
		opts.Metrics.Cost.WithLabelValues(opts.DefaultModel)
		for _, dir := range []string{"input", "output"} {
			opts.Metrics.Tokens.WithLabelValues(opts.DefaultModel, dir)
		}
	}
	return g
}

func bucketPeriod(o BreakerOptions) time.Duration {
	if o.Buckets <= 1 {
		return 0 // fixed window
	}
	return o.Interval / time.Duration(o.Buckets)
}

// excluded errors neither open nor close a breaker.
func excluded(err error) bool {
	if errors.Is(err, ErrRateLimited) || errors.Is(err, ErrBudgetExceeded) || errors.Is(err, ErrUserLimit) || errIsContext(err) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			return true
		}
	}
	return false
}

// Complete calls the provider through the layer's breaker with the timeout.
func (g *Guard) Complete(ctx context.Context, req Request) (Response, error) {
	cb, ok := g.breakers[req.Layer]
	if !ok {
		return Response{}, fmt.Errorf("%w: got %q", ErrUnknownLayer, req.Layer)
	}
	if req.Model == "" {
		req.Model = g.opts.DefaultModel
	}
	var ticket *Ticket // nil without a ledger: Settle is then a no-op
	if g.opts.Ledger != nil {
		var err error
		if ticket, err = g.opts.Ledger.Reserve(ctx, UserFrom(ctx), req.Model, g.WorstCost(req)); err != nil {
			outcome := OutcomeBudgetExceeded
			if errors.Is(err, ErrUserLimit) {
				outcome = OutcomeUserLimited
			}
			g.count(req, outcome)
			return Response{}, err
		}
	}

	var (
		took   time.Duration
		called bool // the provider was asked (not refused by the breaker)
	)
	resp, err := cb.Execute(func() (Response, error) {
		called = true
		cctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
		defer cancel()
		start := time.Now()
		resp, err := g.p.Complete(cctx, req)
		took = time.Since(start)
		if errors.Is(err, ErrRateLimited) {
			g.limited[req.Layer].Add(1)
		} else if ctx.Err() == nil {
			g.limited[req.Layer].Store(0)
		}
		if err != nil {
			switch {
			case ctx.Err() != nil: // the caller gave up: not the provider's fault
				return resp, fmt.Errorf("llm %s call: %w", req.Layer, ctx.Err())
			case cctx.Err() != nil:
				return resp, fmt.Errorf("%w after %s (layer %s)", ErrTimeout, g.opts.Timeout, req.Layer)
			}
		}
		return resp, err
	})

	ticket.Settle(settlement(called, resp, err, ticket))
	outcome := classify(err)
	g.count(req, outcome)
	if outcome == OutcomeCircuitOpen {
		return Response{}, fmt.Errorf("%w: llm_%s", ErrCircuitOpen, req.Layer)
	}
	if g.opts.Metrics != nil && outcome != OutcomeRateLimited {
		// Instant refusals would drag the latency quantiles down.
		g.opts.Metrics.Duration.WithLabelValues(req.Model, req.Layer).Observe(took.Seconds())
	}
	if err != nil {
		storm := errors.Is(err, ErrRateLimited) && g.limited[req.Layer].Load() > g.opts.Breaker.RateLimitStorm
		if !excluded(err) || storm {
			kind := "other"
			var ae *APIError
			switch {
			case errors.Is(err, ErrTimeout):
				kind = "timeout"
			case storm:
				kind = "rate_limited"
			case errors.As(err, &ae):
				kind = "api_error"
			}
			if g.opts.Metrics != nil {
				g.opts.Metrics.BreakerFailures.WithLabelValues("llm_"+req.Layer, kind).Inc()
			}
		}
		return resp, err
	}

	if resp.Model == "" {
		resp.Model = req.Model
	}
	if resp.Duration == 0 {
		resp.Duration = took
	}
	if g.opts.Metrics != nil {
		m := g.opts.Metrics
		m.Tokens.WithLabelValues(req.Model, "input").Add(float64(resp.TokensIn))
		m.Tokens.WithLabelValues(req.Model, "output").Add(float64(resp.TokensOut))
		m.Cost.WithLabelValues(req.Model).Add(resp.CostUSD)
	}
	return resp, nil
}

// WorstCost is the most a request can cost: every byte of its system
// prompt and prompt as an input token (no tokenizer makes more tokens than
// bytes; English runs about four bytes a token, so this is generous) plus
// a little for the message framing, and max_tokens of output, at the
// model's price.
func (g *Guard) WorstCost(req Request) float64 {
	model := req.Model
	if model == "" {
		model = g.opts.DefaultModel
	}
	out := req.MaxTokens
	if out <= 0 {
		out = g.opts.DefaultMaxTokens
	}
	return Cost(model, len(req.System)+len(req.Prompt)+framingTokens, out)
}

// framingTokens covers the tokens a provider adds around the messages.
const framingTokens = 32

// settlement is what an ended call costs the budget: its price when it
// answered; nothing when the provider was never asked (open breaker) or
// refused it (an error status or a rate limit is not billed); its whole
// reservation when its cost is unknown (the guard's timeout, the caller
// leaving, a broken connection or answer): the provider may have billed it.
func settlement(called bool, resp Response, err error, t *Ticket) float64 {
	var ae *APIError
	switch {
	case err == nil:
		return resp.CostUSD
	case !called, errors.As(err, &ae), errors.Is(err, ErrRateLimited):
		return 0
	case t == nil:
		return 0
	default:
		return t.ReservedUSD()
	}
}

func (g *Guard) count(req Request, outcome string) {
	if g.opts.Metrics != nil {
		g.opts.Metrics.Requests.WithLabelValues(req.Model, req.Layer, outcome).Inc()
	}
}

func classify(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return OutcomeCircuitOpen
	case errors.Is(err, ErrTimeout):
		return OutcomeTimeout
	case errors.Is(err, ErrRateLimited):
		return OutcomeRateLimited
	case errIsContext(err):
		return OutcomeCanceled
	default:
		return OutcomeError
	}
}

// BreakerStates returns each breaker's state by name ("llm_L1": "closed",
// "half-open" or "open").
func (g *Guard) BreakerStates() map[string]string {
	out := make(map[string]string, len(g.breakers))
	for layer, cb := range g.breakers {
		out["llm_"+layer] = cb.State().String()
	}
	return out
}
