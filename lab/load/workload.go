package load

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Workload is the virtual users' logic (lab/workload/hal9, lab/workload/http
// implement it). The engine calls Setup once per run, then NewVU for each
// VU it allocates, then VU.Iteration as its executors schedule.
type Workload interface {
	// Setup runs once before any VU starts: register custom metrics on
	// env.Metrics and do shared preparation. Its requests are not recorded.
	Setup(ctx context.Context, env *Env) error
	// NewVU creates virtual user id (unique in the test, across segments).
	NewVU(id int) (VU, error)
}

// VU runs iterations one after another; it is never called concurrently.
// An iteration returns an error for logic failures it could not record as
// a check (the engine counts and logs them); failed requests are already
// in http_req_failed.
type VU interface {
	Iteration(ctx context.Context, it *Iter) error
}

// IterationFunc adapts a function to a VU, and to a Workload with nothing
// to set up whose every VU runs that function: a workload without per-VU
// state needs no types of its own. Many VUs call it at once, so it must
// be safe for concurrent use.
type IterationFunc func(ctx context.Context, it *Iter) error

// Iteration calls f.
func (f IterationFunc) Iteration(ctx context.Context, it *Iter) error { return f(ctx, it) }

// Setup does nothing.
func (f IterationFunc) Setup(context.Context, *Env) error { return nil }

// NewVU returns f for every VU.
func (f IterationFunc) NewVU(int) (VU, error) { return f, nil }

var (
	_ Workload = IterationFunc(nil)
	_ VU       = IterationFunc(nil)
)

// Env is what Workload.Setup gets.
type Env struct {
	Target  string
	Metrics *Registry
	// HTTP uses the run's transport without recording samples, for setup.
	HTTP   *http.Client
	Logger *slog.Logger
	// RunID is unique per run (and shared by the segments of one test when
	// they are given the same Options.RunID), for unique user names.
	RunID string
	// Seed makes the workload's random choices reproducible.
	Seed int64
}

// Probe checks, at setup, that the target answers GET Target+path before
// any load starts: a wrong --target or a server that is not up is an
// error at setup (exit 1) naming the URL, not a run of failed requests.
// Any HTTP response counts as reachable unless wantOK is set, when the
// status must be 2xx.
func (e *Env) Probe(ctx context.Context, path string, wantOK bool) error {
	url := strings.TrimRight(e.Target, "/") + path
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("target %s: %w (check --target)", e.Target, err)
	}
	res, err := e.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("target unreachable: GET %s: %w (is the server up? check --target)", url, err)
	}
	res.Body.Close()
	if wantOK && (res.StatusCode < 200 || res.StatusCode > 299) {
		return fmt.Errorf("target not healthy: GET %s answered %d, want 2xx (is --target a hal9 server?)", url, res.StatusCode)
	}
	return nil
}

// Iter is the context of one iteration.
type Iter struct {
	VU        int       // the VU's id
	Scenario  string    // the scenario's name
	Iteration int64     // the VU's iteration number, from 0
	Scheduled time.Time // when the iteration was due (open model) or started
	HTTP      *Client   // records http_* samples

	rec *recorder
}

// Check records a named check (the checks Rate metric) and returns ok.
func (it *Iter) Check(name string, ok bool) bool {
	it.rec.check(name, ok)
	return ok
}

// Add records a sample of a metric (usually a custom one registered in
// Setup): counters add v, rates count v != 0 as a pass, trends take v in
// milliseconds, gauges set v.
func (it *Iter) Add(m *Metric, v float64) {
	if m != nil {
		it.rec.custom(m, v)
	}
}

// Sleep waits d (think time) or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
