package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hal9-lab/hal9-lab/server/llm"
	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// saveTimeout bounds a signal write; the write runs even if the client left.
const saveTimeout = 10 * time.Second

// TraceHop is one hop in a response's trace.
type TraceHop struct {
	NeuronID   string  `json:"neuron_id"`
	Layer      string  `json:"layer"`
	Direction  string  `json:"direction"`       // forward, backward
	Cache      string  `json:"cache,omitempty"` // hit, miss (forward hops)
	Tier       string  `json:"tier,omitempty"`  // process, redis, inflight (hits)
	TokensIn   int     `json:"tokens_in"`
	TokensOut  int     `json:"tokens_out"`
	CostUSD    float64 `json:"cost_usd"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
}

// SignalResponse answers POST /api/v1/signals and GET /api/v1/signals/{id}.
type SignalResponse struct {
	SignalID    string     `json:"signal_id"`
	Layer       string     `json:"layer"`
	NeuronID    string     `json:"neuron_id"`
	Status      string     `json:"status"`
	Content     string     `json:"content,omitempty"` // GET only
	Output      string     `json:"output"`
	Error       string     `json:"error,omitempty"`
	Cache       string     `json:"cache,omitempty"` // hit, miss, partial
	Trace       []TraceHop `json:"trace"`
	TokensIn    int        `json:"tokens_in"`
	TokensOut   int        `json:"tokens_out"`
	CostUSD     float64    `json:"cost_usd"`
	DurationMS  float64    `json:"duration_ms"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *Server) postSignal(w http.ResponseWriter, r *http.Request) {
	p := stateFrom(r.Context()).principal
	req, e := DecodeSignalRequest(r.Header.Get("Content-Type"), r.Body)
	if e != nil {
		e.write(w)
		return
	}
	async := false
	if v := r.URL.Query().Get("async"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("async=%q: use async=true or async=false", clip(v, 16)))
			return
		}
		async = b
	}
	in := neuron.Input{Content: req.Content, Layer: req.Layer, NeuronID: req.NeuronID, UserID: p.UserID}
	s.labelLayerOf(r.Context(), req.Layer)
	entry, err := s.d.Router.Entry(in)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	sig := store.Signal{
		ID: id.String(), UserID: p.UserID, Layer: req.Layer, NeuronID: entry,
		Content: req.Content, Status: store.SignalPending, CreatedAt: time.Now().UTC(),
	}
	s.sent.Add(1)
	w.Header()["X-Hal9-Signal-Id"] = []string{sig.ID} // canonical keys set directly: Set would allocate to canonicalise X-HAL9-…
	if async {
		s.acceptAsync(w, r, sig, in)
		return
	}
	res, perr := s.d.Router.Process(r.Context(), in)
	complete(&sig, res, perr)
	hops, mems := records(sig, res)
	setSignalHeaders(w, res)
	if lossyAck { // a lossytest build only (lossy.go): false and compiled out otherwise
		s.ackBeforeSave(w, sig, res, perr, hops, mems)
		return
	}
	if err := s.save(r.Context(), sig, hops, mems); err != nil {
		s.storeError(w, r, "save signal", err)
		return
	}
	if perr != nil {
		s.processError(w, r, perr)
		return
	}
	writeJSON(w, http.StatusOK, response(sig, res.CacheSummary(), traceOf(res.Hops)))
}

// complete fills the signal from the router's result.
func complete(sig *store.Signal, res neuron.Result, perr error) {
	sig.Output = res.Output
	sig.TokensIn, sig.TokensOut, sig.CostUSD = res.TokensIn, res.TokensOut, res.CostUSD
	sig.DurationMS = ms(res.Duration)
	sig.CompletedAt = time.Now().UTC()
	sig.Status = store.SignalProcessed
	if perr != nil {
		sig.Status = store.SignalFailed
		sig.Error = perr.Error()
	}
}

// setSignalHeaders: the cost and tokens are what the LLM billed for this
// request (0 for hits), so the sum over responses equals the increase of
// hal9_llm_cost_dollars_total. They are sent on failures too, since the hops
// before the failure were billed.
func setSignalHeaders(w http.ResponseWriter, res neuron.Result) {
	h := w.Header()
	h["X-Hal9-Cache"] = []string{res.CacheSummary()}
	h["X-Hal9-Cost-Usd"] = []string{strconv.FormatFloat(res.CostUSD, 'f', -1, 64)}
	h["X-Hal9-Tokens"] = []string{strconv.Itoa(res.TokensIn + res.TokensOut)}
}

// records turns the trace into stored hops and memories: one memory per
// completed forward hop (what the neuron was asked and what it answered).
func records(sig store.Signal, res neuron.Result) ([]store.Hop, []store.Memory) {
	hops := make([]store.Hop, 0, len(res.Hops))
	mems := make([]store.Memory, 0, len(res.Hops))
	for i, h := range res.Hops {
		hops = append(hops, store.Hop{
			SignalID: sig.ID, Seq: i, NeuronID: h.NeuronID, Layer: h.Layer, Cache: h.Cache,
			TokensIn: h.TokensIn, TokensOut: h.TokensOut, CostUSD: h.CostUSD,
			DurationMS: ms(h.Duration), Error: h.Error,
		})
		if h.Direction == neuron.Forward && h.Error == "" {
			mems = append(mems, store.Memory{
				NeuronID: h.NeuronID, Layer: h.Layer, SignalID: sig.ID,
				Content: clip(h.Input, 1024) + "\n" + clip(h.Output, 2048), CreatedAt: sig.CompletedAt,
			})
		}
	}
	return hops, mems
}

func traceOf(hops []neuron.Hop) []TraceHop {
	out := make([]TraceHop, len(hops))
	for i, h := range hops {
		out[i] = TraceHop{NeuronID: h.NeuronID, Layer: h.Layer, Direction: h.Direction, Cache: h.Cache, Tier: h.Tier,
			TokensIn: h.TokensIn, TokensOut: h.TokensOut, CostUSD: h.CostUSD, DurationMS: ms(h.Duration), Error: h.Error}
	}
	return out
}

// traceFromStore rebuilds a trace from stored hops; a backward hop is told
// by its error prefix (store.Hop has no direction).
func traceFromStore(hops []store.Hop) []TraceHop {
	out := make([]TraceHop, len(hops))
	for i, h := range hops {
		dir := neuron.Forward
		if strings.HasPrefix(h.Error, neuron.BackwardPrefix) {
			dir = neuron.Backward
		}
		out[i] = TraceHop{NeuronID: h.NeuronID, Layer: h.Layer, Direction: dir, Cache: h.Cache,
			TokensIn: h.TokensIn, TokensOut: h.TokensOut, CostUSD: h.CostUSD, DurationMS: h.DurationMS, Error: h.Error}
	}
	return out
}

// cacheSummary of a stored trace, by the one rule in neuron.Result.CacheSummary.
func cacheSummary(trace []TraceHop) string {
	hops := make([]neuron.Hop, len(trace))
	for i, h := range trace {
		hops[i] = neuron.Hop{Direction: h.Direction, Cache: h.Cache}
	}
	return neuron.Result{Hops: hops}.CacheSummary()
}

func response(sig store.Signal, cache string, trace []TraceHop) SignalResponse {
	resp := SignalResponse{
		SignalID: sig.ID, Layer: sig.Layer, NeuronID: sig.NeuronID, Status: sig.Status,
		Output: sig.Output, Error: sig.Error, Cache: cache, Trace: trace,
		TokensIn: sig.TokensIn, TokensOut: sig.TokensOut, CostUSD: sig.CostUSD,
		DurationMS: sig.DurationMS, CreatedAt: sig.CreatedAt,
	}
	if !sig.CompletedAt.IsZero() {
		t := sig.CompletedAt
		resp.CompletedAt = &t
	}
	if resp.Trace == nil {
		resp.Trace = []TraceHop{}
	}
	return resp
}

// save writes the signal with its hops and memories before the answer, so
// an acknowledged signal is durable; it is not cut short by the client
// leaving.
func (s *Server) save(ctx context.Context, sig store.Signal, hops []store.Hop, mems []store.Memory) error {
	return s.saveWithin(context.WithoutCancel(ctx), sig, hops, mems)
}

// saveWithin is save within ctx (and saveTimeout): the async workers' final
// save, which the drain deadline may cut.
func (s *Server) saveWithin(ctx context.Context, sig store.Signal, hops []store.Hop, mems []store.Memory) error {
	ctx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	if err := s.d.Store.SaveSignal(ctx, sig, hops, mems); err != nil {
		return err
	}
	if s.d.Signals != nil && sig.Status != store.SignalPending {
		s.d.Signals.Saved(ctx, sig, hops)
	}
	return nil
}

// storeError answers a store failure: 503 + Retry-After when the database
// is unreachable, 500 otherwise.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		loggerFrom(r.Context()).Warn(what+": store unavailable", "error", err)
		writeRetry(w, http.StatusServiceUnavailable, CodeUnavailable, "the database is unavailable; retry shortly", 2*time.Second)
	case storeTimedOut(r, err):
		// Our own deadline (saveTimeout), not the client's: a database that
		// stopped answering (paused, black-holed) is unavailable too.
		loggerFrom(r.Context()).Warn(what+": store did not answer in time", "error", err)
		writeRetry(w, http.StatusServiceUnavailable, CodeUnavailable, "the database did not answer in time; retry shortly", 2*time.Second)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, CodeConflict, "already exists")
	default:
		loggerFrom(r.Context()).Error(what, "error", err)
		writeError(w, http.StatusInternalServerError, CodeInternal, what+" failed; the request id is in X-Request-ID")
	}
}

// llmError maps a failed hop to the HTTP answer.
func llmError(err error) *apiError {
	var ie *neuron.InputError
	if errors.As(err, &ie) {
		return badRequest(CodeBadRequest, "%s", ie.Msg)
	}
	e := &apiError{Status: http.StatusServiceUnavailable, Code: CodeLLMUnavailable, RetryAfter: time.Second}
	switch {
	case errors.Is(err, llm.ErrCircuitOpen):
		e.Msg = "the LLM circuit breaker is open after repeated failures; retry later: " + err.Error()
		e.RetryAfter = 30 * time.Second
	case errors.Is(err, llm.ErrRateLimited):
		e.Msg = "the LLM provider is rate limiting; retry after the Retry-After delay: " + err.Error()
		if d, ok := llm.RetryAfter(err); ok {
			e.RetryAfter = d
		}
	case errors.Is(err, llm.ErrUserLimit):
		// This user's share of the budget or its calls in flight: the
		// others' signals still flow, so it is the user's 429, not a 503.
		e.Status, e.Code = http.StatusTooManyRequests, CodeRateLimited
		e.Msg = "your share of the LLM budget is spent or too many of your uncached signals are running; retry after the Retry-After delay (cached signals still flow): " + err.Error()
		if d, ok := llm.RetryAfter(err); ok {
			e.RetryAfter = d
		}
	case errors.Is(err, llm.ErrBudgetExceeded):
		// Only signals that need an LLM call get here: cached answers flow.
		e.Code = CodeBudgetExceeded
		e.Msg = "the LLM cost budget is spent, so signals that are not cached cannot be answered now (--llm-budget-hourly, --llm-budget-daily): " + err.Error()
		e.RetryAfter = time.Minute
		if d, ok := llm.RetryAfter(err); ok {
			e.RetryAfter = d
		}
	case errors.Is(err, llm.ErrTimeout):
		e.Msg = "the LLM call timed out: " + err.Error()
	case isCanceled(err):
		e.Msg = "the request was canceled before the signal completed"
	default:
		e.Msg = "the LLM call failed: " + err.Error()
	}
	return e
}

func (s *Server) processError(w http.ResponseWriter, r *http.Request, err error) {
	e := llmError(err)
	loggerFrom(r.Context()).Warn("signal failed", "error", err, "status", e.Status)
	e.write(w)
}

func (s *Server) getSignal(w http.ResponseWriter, r *http.Request) {
	p := stateFrom(r.Context()).principal
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no signal %q", clip(id, 64)))
		return
	}
	var (
		sig  store.Signal
		hops []store.Hop
		ok   bool
	)
	// Cache-Control: no-cache reads the store, not the record cache (the
	// lab's ledger check; only the owner ever sees the answer).
	if s.d.Signals != nil && !noCache(r) {
		sig, hops, ok = s.d.Signals.Get(r.Context(), id)
	}
	if !ok {
		var err error
		sig, hops, err = s.d.Store.GetSignal(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no signal %q", id))
			return
		}
		if err != nil {
			s.storeError(w, r, "read signal", err)
			return
		}
		// Cache-aside: populate on a miss, once the signal is final (a
		// pending one changes when its worker finishes).
		if s.d.Signals != nil && sig.Status != store.SignalPending {
			s.d.Signals.Fill(r.Context(), sig, hops)
		}
	}
	// Someone else's signal is answered like a missing one: ids don't leak.
	if sig.UserID != p.UserID {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no signal %q", id))
		return
	}
	trace := traceFromStore(hops)
	resp := response(sig, "", trace)
	if sig.Status != store.SignalPending {
		resp.Cache = cacheSummary(trace)
	}
	resp.Content = sig.Content
	writeJSON(w, http.StatusOK, resp)
}
