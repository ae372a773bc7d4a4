package hal9

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/load"
)

// SetLedger makes the workload record every write the server acknowledged
// (signals answered 200 or 202, registrations and API keys answered 201)
// into r. Call it before the run.
func (w *Workload) SetLedger(r ledger.Recorder) { w.acks = r }

func (w *Workload) ackUser(id, username string) {
	if w.acks != nil && id != "" {
		w.acks.Record(ledger.Entry{Kind: ledger.KindUser, ID: id, Username: username})
	}
}

func (v *vu) ackSignal(id string, status int) {
	if v.w.acks != nil && id != "" {
		now := time.Now().UTC()
		v.w.acks.Record(ledger.Entry{Kind: ledger.KindSignal, ID: id, User: v.user, Status: status, At: &now})
	}
}

// traceSamples adds one hal9_cache_hit sample per forward hop that names
// its cache result; complete is false when a hop lacks a field.
func (v *vu) traceSamples(it *load.Iter, trace []hop) (hits, total int, complete bool) {
	complete = true
	for _, h := range trace {
		if h.NeuronID == "" || h.Layer == "" || h.TokensIn == nil || h.TokensOut == nil || h.CostUSD == nil || h.DurationMS == nil {
			complete = false
		}
		if h.Cache == "" || (h.Direction != "" && h.Direction != "forward") {
			continue
		}
		total++
		hit := h.Cache == "hit"
		if hit {
			hits++
		}
		it.Add(v.w.metrics.cacheHit, rateSample(hit))
	}
	return hits, total, complete
}

// asyncPollFirst and asyncPollMax bound the wait for an async signal: the
// first look after 100 ms, then doubling, for at most 15 s in all.
const (
	asyncPollFirst = 100 * time.Millisecond
	asyncPollEvery = time.Second
	asyncPollMax   = 15 * time.Second
)

// asyncSignal submits a signal with ?async=true (202 + signal_id, saved
// pending before the answer), then reads it back until it is processed or
// failed, and counts its cost, tokens and cache hits from the final trace,
// so the client's totals still match the server's.
func (v *vu) asyncSignal(ctx context.Context, it *load.Iter) error {
	layer := v.w.cfg.Layers[v.rng.IntN(len(v.w.cfg.Layers))]
	body, _ := json.Marshal(map[string]string{"content": v.content(layer), "layer": layer})
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/signals?async=true", Name: "/api/v1/signals?async=true",
		Body: body, Header: v.auth, Op: OpAsyncSignal})
	if err != nil {
		return err
	}
	if res.Status == http.StatusUnauthorized && !v.w.cfg.SharedUser {
		v.token = ""
	}
	var acc struct {
		SignalID string `json:"signal_id"`
		Status   string `json:"status"`
	}
	ok := res.Status == http.StatusAccepted && json.Unmarshal(res.Body, &acc) == nil && acc.SignalID != "" && acc.Status == "pending"
	if !it.Check("async signal: 202 with signal_id, status pending", ok) {
		return nil
	}
	v.ackSignal(acc.SignalID, http.StatusAccepted)
	wait, waited := asyncPollFirst, time.Duration(0)
	for waited < asyncPollMax {
		if err := load.Sleep(ctx, wait); err != nil {
			return err
		}
		waited += wait
		wait = min(wait*2, asyncPollEvery)
		res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/signals/" + acc.SignalID, Name: "/api/v1/signals/{id}",
			Header: v.auth, Op: OpAsyncSignal})
		if err != nil {
			return err
		}
		if res.Status != http.StatusOK {
			it.Check("async signal: GET /api/v1/signals/{id} 200", false)
			return nil
		}
		var s struct {
			signalResponse
			Status    string `json:"status"`
			TokensIn  int    `json:"tokens_in"`
			TokensOut int    `json:"tokens_out"`
		}
		if json.Unmarshal(res.Body, &s) != nil || s.SignalID != acc.SignalID {
			it.Check("async signal: GET returns the signal", false)
			return nil
		}
		if s.Status == "pending" {
			continue
		}
		// What the LLM billed for it, as the sync signal's headers say.
		if s.CostUSD != nil {
			it.Add(v.w.metrics.cost, *s.CostUSD)
		}
		it.Add(v.w.metrics.tokens, float64(s.TokensIn+s.TokensOut))
		if s.Status == "processed" {
			_, _, complete := v.traceSamples(it, s.Trace)
			it.Check("async signal: processed with output and trace", s.Output != nil && len(s.Trace) > 0 && complete)
		} else {
			it.Check("async signal: processed", false)
		}
		return nil
	}
	it.Check(fmt.Sprintf("async signal: done within %s", asyncPollMax), false)
	return nil
}

// apiKey creates an API key for the VU's user.
func (v *vu) apiKey(ctx context.Context, it *load.Iter) error {
	body, _ := json.Marshal(map[string]string{"name": fmt.Sprintf("lab key %d", v.n)})
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/auth/api-keys", Body: body, Header: v.auth, Op: OpAPIKey})
	if err != nil {
		return err
	}
	if res.Status == http.StatusUnauthorized && !v.w.cfg.SharedUser {
		v.token = ""
	}
	var out struct {
		Key    string `json:"key"`
		APIKey struct {
			ID     string `json:"id"`
			Prefix string `json:"prefix"`
		} `json:"api_key"`
	}
	ok := res.Status == http.StatusCreated && json.Unmarshal(res.Body, &out) == nil && out.Key != "" && out.APIKey.ID != ""
	if !it.Check("api key: 201 with key and api_key.id", ok) {
		return nil
	}
	if v.w.acks != nil {
		v.w.acks.Record(ledger.Entry{Kind: ledger.KindAPIKey, ID: out.APIKey.ID, User: v.user})
	}
	return nil
}
