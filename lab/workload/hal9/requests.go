package hal9

// The mix's operations: each one's requests, checks and custom metrics.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

// login is the VU's own register + login, once (again after a 401).
func (v *vu) login(ctx context.Context, it *load.Iter) error {
	user := "lab_" + v.w.runID + "_vu" + strconv.Itoa(v.id)
	if _, err := v.register(ctx, it, OpSetup, user); err != nil {
		return err
	}
	tok, err := v.doLogin(ctx, it, OpSetup, user)
	if err != nil {
		return err
	}
	v.setToken(tok)
	v.user = user
	return nil
}

type userJSON struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	CreatedAt string `json:"created_at"`
}

type tokenResponse struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresIn    int       `json:"expires_in"`
	User         *userJSON `json:"user"`
}

var errFailed = errors.New("request failed")

func (v *vu) register(ctx context.Context, it *load.Iter, op, user string) (bool, error) {
	b := append(v.body[:0], `{"email":"`...)
	b = append(appendEscaped(appendEscaped(b, user), "@lab.invalid"), `","password":`...)
	b = append(appendQuoted(b, password), `,"username":`...)
	v.body = append(appendQuoted(b, user), '}')
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/auth/register", Body: v.body, Header: v.json, Op: op})
	if err != nil {
		return false, err
	}
	if op == OpSetup && res.Status == http.StatusConflict {
		return true, nil // this VU registered in an earlier login
	}
	var u *fastjson.Value
	if o := v.object(res.Body); o != nil {
		u = o.Get("user")
	}
	if !it.Check("register: 201 with user {id, username, email, created_at}", res.Status == http.StatusCreated && userOK(u, user)) {
		return false, fmt.Errorf("register %s: status %d: %w", user, res.Status, errFailed)
	}
	v.w.ackUser(str(u, "id"), user)
	return true, nil
}

func (v *vu) doLogin(ctx context.Context, it *load.Iter, op, user string) (string, error) {
	b := append(v.body[:0], `{"password":`...)
	b = append(appendQuoted(b, password), `,"username":`...)
	v.body = append(appendQuoted(b, user), '}')
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: v.body, Header: v.json, Op: op})
	if err != nil {
		return "", err
	}
	o := v.object(res.Body)
	ok := res.Status == http.StatusOK && o != nil && len(str(o, "access_token")) > 0 && len(str(o, "refresh_token")) > 0
	if ok {
		exp, isInt := integer(o, "expires_in")
		u := o.Get("user")
		ok = isInt && exp > 0 && u != nil && string(str(u, "username")) == user
	}
	if !it.Check("login: 200 with access_token, refresh_token, expires_in, user", ok) {
		return "", fmt.Errorf("login %s: status %d: %w", user, res.Status, errFailed)
	}
	return string(str(o, "access_token")), nil
}

// signalShape tells whether o is a processed signal of layer (empty: any):
// signal_id, layer, output, trace[], cost_usd and duration_ms.
func signalShape(o *fastjson.Value, layer string) bool {
	return o != nil && len(str(o, "signal_id")) > 0 && (layer == "" || string(str(o, "layer")) == layer) &&
		isString(o, "output") && len(o.GetArray("trace")) > 0 && isNumber(o, "cost_usd") && isNumber(o, "duration_ms")
}

// content draws the signal's prompt from the layer's catalogue into
// v.prompt.
func (v *vu) content(layer string) []byte {
	v.prompt = appendPrompt(v.prompt[:0], v.w.seed, layer, v.w.zipf.sample(v.rng))
	return v.prompt
}

// signalBody is {"content": a catalogue prompt, "layer": layer}.
func (v *vu) signalBody(layer string) []byte {
	b := append(v.body[:0], `{"content":`...)
	b = append(appendQuoted(b, v.content(layer)), `,"layer":`...)
	v.body = append(appendQuoted(b, layer), '}')
	return v.body
}

func (v *vu) signal(ctx context.Context, it *load.Iter) error {
	layer := v.w.cfg.Layers[v.rng.IntN(len(v.w.cfg.Layers))]
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/signals", Body: v.signalBody(layer), Header: v.auth, Op: OpSignal, Layer: layer})
	if err != nil {
		return err
	}
	// cost and tokens come on failed responses too
	costH, tokensH := res.Header.Get("X-HAL9-Cost-USD"), res.Header.Get("X-HAL9-Tokens")
	if costH != "" {
		if f, err := strconv.ParseFloat(costH, 64); err == nil {
			it.Add(v.w.metrics.cost, f)
		}
	}
	if tokensH != "" {
		if n, err := strconv.ParseFloat(tokensH, 64); err == nil {
			it.Add(v.w.metrics.tokens, n)
		}
	}
	if res.Status == http.StatusUnauthorized && !v.w.cfg.SharedUser {
		v.token = "" // expired: log in again next iteration
	}
	if !it.Check("signal: 200", res.Status == http.StatusOK) {
		return nil // http_req_failed has it
	}
	o := v.object(res.Body)
	shape := signalShape(o, layer)
	var trace []*fastjson.Value
	if o != nil {
		v.ackSignal(str(o, "signal_id"), http.StatusOK)
		trace = o.GetArray("trace")
	}
	hits, total, complete := v.traceSamples(it, trace)
	it.Check("signal: body has signal_id, layer, output, trace[], cost_usd, duration_ms", shape && complete)
	hdr := res.Header.Get("X-HAL9-Cache")
	it.Check("signal: X-HAL9-Cache, X-HAL9-Cost-USD, X-HAL9-Tokens headers", hdr != "" && costH != "" && tokensH != "")
	want := "partial"
	switch {
	case total > 0 && hits == total:
		want = "hit"
	case hits == 0:
		want = "miss"
	}
	it.Check("signal: X-HAL9-Cache agrees with the trace", hdr == want)
	it.Add(v.w.metrics.signalHit, rateSample(hdr == "hit"))
	return nil
}

// rateSample is the sample a Rate metric takes for ok: 1 passes, 0 fails.
func rateSample(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

func (v *vu) status(ctx context.Context, it *load.Iter) error {
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/status", Header: v.auth, Op: OpStatus})
	if err != nil {
		return err
	}
	if res.Status == http.StatusTooManyRequests {
		it.Check("429 has Retry-After", res.Header.Get("Retry-After") != "")
	}
	ok := res.Status == http.StatusOK
	if ok {
		o := v.object(res.Body)
		ok = o != nil && len(str(o, "status")) > 0
	}
	it.Check("status: 200 with status", ok)
	return nil
}

func (v *vu) neuronQuery(ctx context.Context, it *load.Iter) error {
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/neurons", Header: v.auth, Op: OpNeurons})
	if err != nil {
		return err
	}
	var list []*fastjson.Value
	if o := v.object(res.Body); o != nil && res.Status == http.StatusOK {
		list = o.GetArray("neurons")
	}
	if !it.Check("neurons: 200 with a non-empty list", len(list) > 0) {
		return nil
	}
	id := string(str(list[v.rng.IntN(len(list))], "id"))
	res, err = it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/neurons/" + id,
		Name: "/api/v1/neurons/{id}", Header: v.auth, Op: OpNeurons})
	if err != nil {
		return err
	}
	ok := res.Status == http.StatusOK
	if ok {
		o := v.object(res.Body)
		ok = o != nil && isString(o, "id") && string(str(o, "id")) == id
	}
	it.Check("neuron: 200 with the same id", ok)
	return nil
}

func (v *vu) authFlow(ctx context.Context, it *load.Iter) error {
	user := "lab_" + v.w.runID + "_" + strconv.Itoa(v.id) + "_" + strconv.Itoa(v.n)
	if ok, err := v.register(ctx, it, OpAuth, user); !ok || err != nil {
		return nil // recorded as a failed check and request
	}
	tok, err := v.doLogin(ctx, it, OpAuth, user)
	if err != nil {
		return nil
	}
	if v.flowAuth == nil {
		v.flowAuth = http.Header{"Authorization": {""}}
	}
	v.flowAuth["Authorization"][0] = "Bearer " + tok
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/auth/profile", Header: v.flowAuth, Op: OpAuth})
	if err != nil {
		return err
	}
	ok := res.Status == http.StatusOK
	if ok {
		o := v.object(res.Body)
		ok = o != nil && string(o.GetStringBytes("user", "username")) == user
	}
	it.Check("profile: 200 with the user", ok)
	return nil
}

func (v *vu) metrics(ctx context.Context, it *load.Iter) error {
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodGet, Path: "/api/v1/metrics", Header: v.auth, Op: OpMetrics})
	if err != nil {
		return err
	}
	ok := res.Status == http.StatusOK
	if ok {
		o := v.object(res.Body)
		ok = o != nil && o.Exists("signals")
	}
	it.Check("metrics: 200 with signals", ok)
	return nil
}
