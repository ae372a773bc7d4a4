package hal9

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fastjson"

	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/load"
)

// SetLedger makes the workload record every write the server acknowledged
// (signals answered 200 or 202, registrations and API keys answered 201)
// into r. Call it before the run.
func (w *Workload) SetLedger(r ledger.Recorder) { w.acks = r }

func (w *Workload) ackUser(id []byte, username string) {
	if w.acks != nil && len(id) > 0 {
		w.acks.Record(ledger.Entry{Kind: ledger.KindUser, ID: string(id), Username: username})
	}
}

func (v *vu) ackSignal(id []byte, status int) {
	if v.w.acks != nil && len(id) > 0 {
		now := time.Now().UTC()
		v.w.acks.Record(ledger.Entry{Kind: ledger.KindSignal, ID: string(id), User: v.user, Status: status, At: &now})
	}
}

// traceSamples adds one hal9_cache_hit sample per forward hop that names
// its cache result; complete is false when a hop lacks a field (neuron_id,
// layer, tokens_in, tokens_out, cost_usd, duration_ms).
func (v *vu) traceSamples(it *load.Iter, trace []*fastjson.Value) (hits, total int, complete bool) {
	complete = true
	for _, h := range trace {
		_, tin := integer(h, "tokens_in")
		_, tout := integer(h, "tokens_out")
		if len(str(h, "neuron_id")) == 0 || len(str(h, "layer")) == 0 || !tin || !tout || !isNumber(h, "cost_usd") || !isNumber(h, "duration_ms") {
			complete = false
		}
		cache, dir := str(h, "cache"), str(h, "direction")
		if len(cache) == 0 || (len(dir) > 0 && string(dir) != "forward") {
			continue
		}
		total++
		hit := string(cache) == "hit"
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
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/signals?async=true", Name: "/api/v1/signals?async=true",
		Body: v.signalBody(layer), Header: v.auth, Op: OpAsyncSignal, Layer: layer})
	if err != nil {
		return err
	}
	if res.Status == http.StatusUnauthorized && !v.w.cfg.SharedUser {
		v.token = ""
	}
	var id string
	if o := v.object(res.Body); o != nil && res.Status == http.StatusAccepted && string(str(o, "status")) == "pending" {
		id = string(str(o, "signal_id"))
	}
	if !it.Check("async signal: 202 with signal_id, status pending", id != "") {
		return nil
	}
	v.ackSignal([]byte(id), http.StatusAccepted)
	wait, waited := asyncPollFirst, time.Duration(0)
	for waited < asyncPollMax {
		if err := load.Sleep(ctx, wait); err != nil {
			return err
		}
		waited += wait
		wait = min(wait*2, asyncPollEvery)
		res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/signals/" + id, Name: "/api/v1/signals/{id}",
			Header: v.auth, Op: OpAsyncSignal})
		if err != nil {
			return err
		}
		if res.Status != http.StatusOK {
			it.Check("async signal: GET /api/v1/signals/{id} 200", false)
			return nil
		}
		o := v.object(res.Body)
		if o == nil || string(str(o, "signal_id")) != id {
			it.Check("async signal: GET returns the signal", false)
			return nil
		}
		status := string(str(o, "status"))
		if status == "pending" {
			continue
		}
		// What the LLM billed for it, as the sync signal's headers say.
		if isNumber(o, "cost_usd") {
			it.Add(v.w.metrics.cost, o.GetFloat64("cost_usd"))
		}
		it.Add(v.w.metrics.tokens, float64(o.GetInt64("tokens_in")+o.GetInt64("tokens_out")))
		if status == "processed" {
			_, _, complete := v.traceSamples(it, o.GetArray("trace"))
			it.Check("async signal: processed with output and trace", isString(o, "output") && len(o.GetArray("trace")) > 0 && complete)
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
	b := append(v.body[:0], `{"name":"lab key `...)
	v.body = append(strconv.AppendInt(b, int64(v.n), 10), `"}`...)
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/auth/api-keys", Body: v.body, Header: v.auth, Op: OpAPIKey})
	if err != nil {
		return err
	}
	if res.Status == http.StatusUnauthorized && !v.w.cfg.SharedUser {
		v.token = ""
	}
	var o *fastjson.Value
	if res.Status == http.StatusCreated {
		o = v.object(res.Body)
	}
	keyID := o.GetStringBytes("api_key", "id") // nil-safe
	if !it.Check("api key: 201 with key and api_key.id", o != nil && len(str(o, "key")) > 0 && len(keyID) > 0) {
		return nil
	}
	if v.w.acks != nil {
		v.w.acks.Record(ledger.Entry{Kind: ledger.KindAPIKey, ID: string(keyID), User: v.user})
	}
	return nil
}
