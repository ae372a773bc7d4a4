package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/server/llm"
	"github.com/hal9-lab/hal9-lab/server/neuron"
)

func (s *Server) listNeurons(w http.ResponseWriter, r *http.Request) {
	ns := s.d.Router.Neurons()
	if l := r.URL.Query().Get("layer"); l != "" {
		if !neuron.ValidLayer(l) {
			writeError(w, http.StatusBadRequest, CodeInvalidLayer, fmt.Sprintf("layer must be one of %s, got %q", neuron.ValidLayersText, clip(l, 16)))
			return
		}
		kept := ns[:0]
		for _, n := range ns {
			if n.Layer == l {
				kept = append(kept, n)
			}
		}
		ns = kept
	}
	writeJSON(w, http.StatusOK, map[string]any{"neurons": ns, "count": len(ns)})
}

func (s *Server) getNeuron(w http.ResponseWriter, r *http.Request) {
	n, ok := s.d.Router.Neuron(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no neuron %q; GET /api/v1/neurons lists them", clip(r.PathValue("id"), 64)))
		return
	}
	writeJSON(w, http.StatusOK, n)
}

// neuronHealth answers 200 for an active neuron and 503 for a degraded one,
// so a probe can use the status alone.
func (s *Server) neuronHealth(w http.ResponseWriter, r *http.Request) {
	n, ok := s.d.Router.Neuron(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no neuron %q; GET /api/v1/neurons lists them", clip(r.PathValue("id"), 64)))
		return
	}
	code := http.StatusOK
	if n.State != neuron.StateActive {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"id": n.ID, "layer": n.Layer, "state": n.State, "healthy": code == http.StatusOK,
		"breaker": n.Breaker, "last_error": n.LastError})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.d.Router.Stats()
	ns := s.d.Router.Neurons()
	active := 0
	for _, n := range ns {
		if n.State == neuron.StateActive {
			active++
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":         "ok",
		"version":        s.d.Version,
		"uptime_seconds": time.Since(s.started).Seconds(),
		"neurons":        ns,
		"neurons_active": active,
		"neurons_total":  len(ns),
		"signals": map[string]any{
			"sent":           s.sent.Load(),
			"processed":      st.Processed,
			"failed":         st.Failed,
			"avg_latency_ms": st.AvgLatencyMS,
		},
		"breakers": s.breakers(),
	})
}

func (s *Server) breakers() map[string]string {
	if s.d.Breakers == nil {
		return map[string]string{}
	}
	return s.d.Breakers()
}

// metricsSnapshot is GET /api/v1/metrics: the JSON view for people and
// scripts; Prometheus scrapes /metrics on the admin listener instead.
func (s *Server) metricsSnapshot(w http.ResponseWriter, r *http.Request) {
	st := s.d.Router.Stats()
	var cost llm.CostSnapshot
	if s.d.Costs != nil {
		cost = s.d.Costs()
	}
	layers := map[string]any{}
	for _, l := range neuron.Layers {
		ls := st.Layers[l]
		layers[l] = map[string]any{
			"signals_processed": ls.Processed,
			"signals_failed":    ls.Failed,
			"avg_latency_ms":    ls.AvgLatencyMS,
			"hops":              ls.Hops,
			"cache_hit_rate":    ls.HitRate,
			"cache_hits":        ls.CacheHits,
			"cache_misses":      ls.CacheMisses,
			"hop_errors":        ls.HopErrors,
			"tokens_in":         ls.TokensIn,
			"tokens_out":        ls.TokensOut,
			"cost_usd":          ls.CostUSD,
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"uptime_seconds": time.Since(s.started).Seconds(),
		"signals": map[string]any{
			"sent": s.sent.Load(), "processed": st.Processed, "failed": st.Failed,
			"avg_latency_ms": st.AvgLatencyMS,
		},
		"tokens": map[string]any{"input": st.TokensIn, "output": st.TokensOut, "total": st.TokensIn + st.TokensOut},
		"cost": map[string]any{
			"hourly_usd": cost.HourUSD, "daily_usd": cost.DayUSD, "total_usd": cost.TotalUSD,
			"by_model_usd": cost.ByModel, "hourly_budget_usd": cost.HourlyBudgetUSD, "daily_budget_usd": cost.DailyBudgetUSD,
		},
		"cache": map[string]any{
			"hit_rate": st.CacheHitRate, "hits_by_tier": st.CacheHits, "misses": st.CacheMisses,
		},
		"layers":   layers,
		"breakers": s.breakers(),
	})
}

// searchMemories is GET /api/v1/memories/search?q=&limit= (limit 1..100, default 20).
func (s *Server) searchMemories(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "q is required: the words to search for, e.g. ?q=cache+design")
		return
	}
	if len(q) > 512 {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "q is longer than 512 bytes; search with fewer words")
		return
	}
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("limit=%q: use a whole number from 1 to 100", clip(v, 16)))
			return
		}
		limit = n
	}
	type memory struct {
		ID        int64     `json:"id"`
		NeuronID  string    `json:"neuron_id"`
		Layer     string    `json:"layer"`
		SignalID  string    `json:"signal_id"`
		Content   string    `json:"content"`
		Rank      float64   `json:"rank"`
		CreatedAt time.Time `json:"created_at"`
	}
	// Memories are private to the user whose signal made them.
	userID := stateFrom(r.Context()).principal.UserID
	load := func(ctx context.Context) ([]byte, error) {
		mems, err := s.d.Store.SearchMemories(ctx, userID, q, limit)
		if err != nil {
			return nil, err
		}
		out := make([]memory, len(mems))
		for i, m := range mems {
			out[i] = memory{m.ID, m.NeuronID, m.Layer, m.SignalID, m.Content, m.Rank, m.CreatedAt}
		}
		return json.Marshal(map[string]any{"query": q, "count": len(out), "memories": out})
	}
	var (
		body []byte
		err  error
	)
	if s.d.Search != nil {
		body, err = s.d.Search.GetOrLoad(r.Context(), userID, q, limit, load)
	} else {
		body, err = load(r.Context())
	}
	if err != nil {
		s.storeError(w, r, "search memories", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}
