package server

import (
	"fmt"
	"net/http"

	"github.com/hal9-lab/hal9-lab/server/llm"
)

// LLMFaults is the simulated provider's run-time failure settings
// (*llm.Simulated implements it). Nil in Deps when the provider is a real
// one: faults are never injected into real calls.
type LLMFaults interface {
	Faults() llm.SimFaults
	SetFaults(llm.SimFaults) error
}

// llmFaultsRequest: omitted fields keep their current value.
type llmFaultsRequest struct {
	ErrorRate    *float64 `json:"error_rate"`
	LatencyScale *float64 `json:"latency_scale"`
	RateLimitRPM *int     `json:"rate_limit_rpm"`
}

// adminLLM registers GET and PUT /admin/llm/faults on the admin listener
// only (never the API's): the lab's LLM faults (an error rate, a latency
// scale, a 429 rate limit) changed while the server runs.
func (s *Server) adminLLM(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/llm/faults", func(w http.ResponseWriter, r *http.Request) {
		if s.d.LLMFaults == nil {
			noSimulatedLLM(w)
			return
		}
		writeJSON(w, http.StatusOK, s.d.LLMFaults.Faults())
	})
	mux.HandleFunc("PUT /admin/llm/faults", func(w http.ResponseWriter, r *http.Request) {
		if s.d.LLMFaults == nil {
			noSimulatedLLM(w)
			return
		}
		var req llmFaultsRequest
		if e := decodeJSON(r.Header.Get("Content-Type"), http.MaxBytesReader(w, r.Body, 4<<10), &req); e != nil {
			e.write(w)
			return
		}
		f := s.d.LLMFaults.Faults()
		if req.ErrorRate != nil {
			f.ErrorRate = *req.ErrorRate
		}
		if req.LatencyScale != nil {
			f.LatencyScale = *req.LatencyScale
		}
		if req.RateLimitRPM != nil {
			f.RateLimitRPM = *req.RateLimitRPM
		}
		if err := s.d.LLMFaults.SetFaults(f); err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error()+`; send {"error_rate": 0..1, "latency_scale": 0..100, "rate_limit_rpm": 0 (off) or more}, any subset`)
			return
		}
		s.log.Warn("LLM fault settings changed through the admin listener", "error_rate", f.ErrorRate, "latency_scale", f.LatencyScale, "rate_limit_rpm", f.RateLimitRPM)
		writeJSON(w, http.StatusOK, f)
	})
}

func noSimulatedLLM(w http.ResponseWriter) {
	writeError(w, http.StatusConflict, "not_simulated",
		fmt.Sprintf("LLM faults can only be injected into the simulated provider; this server runs a real one (start it with --llm sim)"))
}
