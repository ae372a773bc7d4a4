package faults

import (
	"net/http"
	"sync"
	"time"
)

// Req is one request's outcome as the client saw it.
type Req struct {
	Start, End time.Time
	// Status is the HTTP status; 0 when no response came (refused,
	// reset, timed out).
	Status int
	// RetryAfter: the response carried a Retry-After header.
	RetryAfter bool
}

// Failed is the engine's http_req_failed: no response, or a status ≥ 400
// other than the 4xx a well-behaved test expects (here: any status ≥ 500
// and no response; 4xx are the client's business).
func (r Req) Failed() bool { return r.Status == 0 || r.Status >= 500 }

// Recorder is an http.RoundTripper that notes every request's start, end,
// status and Retry-After: the per-second, per-status record the fault
// analysis reads (the engine's series count errors, not their kinds).
type Recorder struct {
	Next http.RoundTripper
	mu   sync.Mutex
	reqs []Req
}

// RoundTrip implements http.RoundTripper.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := r.Next.RoundTrip(req)
	rec := Req{Start: start, End: time.Now()}
	if err == nil {
		rec.Status = res.StatusCode
		rec.RetryAfter = res.Header.Get("Retry-After") != ""
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return res, err
}

// Requests returns a copy of what was recorded so far.
func (r *Recorder) Requests() []Req {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Req(nil), r.reqs...)
}
