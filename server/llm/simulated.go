package llm

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// SimOptions configure the simulated provider.
type SimOptions struct {
	// Model answers requests with an empty Model (default DefaultModel).
	Model string
	// LatencyScale multiplies every simulated latency; 0 never sleeps
	// (HAL9_LLM_LATENCY_SCALE).
	LatencyScale float64
	// ErrorRate is the probability (0..1) of an injected *APIError with a
	// status in 500..529 (HAL9_LLM_ERROR_RATE).
	ErrorRate float64
	// RateLimitRPM is the requests per minute allowed before ErrRateLimited;
	// 0 is unlimited (HAL9_LLM_RATE_LIMIT_RPM). The burst is one second's
	// worth (at least 1).
	RateLimitRPM int
	// Seed makes latency and error injection reproducible.
	Seed int64
}

// layerProfile is the simulated behaviour of one layer: log-normal latency
// (median, sigma; capped at median·e^(3σ)) and the output-token range.
type layerProfile struct {
	median         time.Duration
	sigma          float64
	outMin, outMax int
}

// Lower layers are reflexive and terse, higher layers slow and verbose.
var layerProfiles = map[string]layerProfile{
	"L1": {15 * time.Millisecond, 0.5, 16, 64},
	"L2": {40 * time.Millisecond, 0.5, 64, 256},
	"L3": {80 * time.Millisecond, 0.5, 128, 384},
	"L4": {150 * time.Millisecond, 0.5, 192, 512},
	"L5": {300 * time.Millisecond, 0.5, 256, 768},
}

// SimLatencyMedian returns the unscaled median latency of a layer's calls.
func SimLatencyMedian(layer string) time.Duration { return profileFor(layer).median }

func profileFor(layer string) layerProfile {
	if p, ok := layerProfiles[layer]; ok {
		return p
	}
	return layerProfiles["L3"]
}

// Simulated is a deterministic stand-in for a model API. Output text and
// token counts depend only on (layer, neuron, system, prompt), so caching
// them is meaningful; latency and injected errors come from a seeded
// generator. Safe for concurrent use: each call derives its own PCG stream
// from (Seed, call number), so no lock is shared between calls.
type Simulated struct {
	opts  SimOptions
	state atomic.Pointer[simState] // error rate, latency scale, rate limit (simfaults.go)
	calls atomic.Uint64
}

var _ Provider = (*Simulated)(nil)

// NewSimulated returns a simulated provider.
func NewSimulated(opts SimOptions) *Simulated {
	if opts.Model == "" {
		opts.Model = DefaultModel
	}
	opts.ErrorRate = min(max(opts.ErrorRate, 0), 1)
	opts.LatencyScale = max(opts.LatencyScale, 0)
	s := &Simulated{opts: opts}
	s.state.Store(newSimState(SimFaults{ErrorRate: opts.ErrorRate, LatencyScale: opts.LatencyScale, RateLimitRPM: max(opts.RateLimitRPM, 0)}))
	return s
}

// Complete simulates one call: rate limit, latency (honouring ctx), injected
// errors, tokens, text and cost.
func (s *Simulated) Complete(ctx context.Context, req Request) (Response, error) {
	start := time.Now()
	st := s.state.Load()
	if st.limiter != nil {
		r := st.limiter.Reserve()
		if d := r.Delay(); d > 0 {
			r.Cancel()
			return Response{}, &RateLimitError{RetryAfter: d}
		}
	}
	model := req.Model
	if model == "" {
		model = s.opts.Model
	}
	prof := profileFor(req.Layer)
	rng := rand.New(rand.NewPCG(uint64(s.opts.Seed), s.calls.Add(1)))

	fail := st.f.ErrorRate > 0 && rng.Float64() < st.f.ErrorRate
	status := 500 + rng.IntN(30)
	if st.f.LatencyScale > 0 {
		// z capped at ±3σ keeps the tail bounded (L5 ≤ ~1.3 s unscaled).
		z := min(max(rng.NormFloat64(), -3), 3)
		d := time.Duration(float64(prof.median) * math.Exp(prof.sigma*z) * st.f.LatencyScale)
		if err := sleep(ctx, d); err != nil {
			return Response{}, err
		}
	}
	if fail {
		return Response{}, &APIError{Status: status, Type: "api_error", Message: "simulated provider failure"}
	}

	// Content-derived: same (layer, neuron, system, prompt) → same answer.
	h := fnv.New64a()
	for _, s := range []string{req.Layer, req.NeuronID, req.System, req.Prompt} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	content := rand.New(rand.NewPCG(h.Sum64(), 0x68616c39))
	out := prof.outMin + content.IntN(prof.outMax-prof.outMin+1)
	if req.MaxTokens > 0 && out > req.MaxTokens {
		out = req.MaxTokens
	}
	in := EstimateTokens(req.System) + EstimateTokens(req.Prompt)
	return Response{
		Text:      simText(content, req, out),
		Model:     model,
		TokensIn:  in,
		TokensOut: out,
		CostUSD:   Cost(model, in, out),
		Duration:  time.Since(start),
	}, nil
}

// EstimateTokens is the simulation's tokenizer: ~4 characters per token,
// at least 1 for non-empty text.
func EstimateTokens(s string) int {
	if s == "" {
		return 0
	}
	return (len(s) + 3) / 4
}

var simWords = strings.Fields(`signal neuron layer pattern reflex plan route memory
context strategy vision design build verify adapt learn observe respond cache
latency budget priority hierarchy feedback forward backward integrate refine
evaluate decide execute monitor model cost token risk goal constraint option`)

// simText builds about tokens·4 characters of text from the content stream.
func simText(rng *rand.Rand, req Request, tokens int) string {
	var b strings.Builder
	b.Grow(tokens*4 + 32)
	b.WriteString(req.Layer)
	b.WriteString("/")
	b.WriteString(req.NeuronID)
	b.WriteString(":")
	for b.Len() < tokens*4 {
		b.WriteByte(' ')
		b.WriteString(simWords[rng.IntN(len(simWords))])
	}
	return b.String()
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
