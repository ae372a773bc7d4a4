package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// BenchOptions configure BenchEngine.
type BenchOptions struct {
	Connections int           // VUs for the engine, -c for wrk (default 50)
	Duration    time.Duration // of each side (default 5s)
	Threads     int           // wrk -t (default 2)
	Wrk         string        // path of wrk ("" looks it up in PATH)
}

// BenchResult compares the engine with wrk on the same endpoint.
type BenchResult struct {
	EngineRPS float64
	WrkRPS    float64
	Ratio     float64 // EngineRPS / WrkRPS
	EngineP99 float64 // ms
}

var benchReq = Request{Method: http.MethodGet, Path: "/", Op: "bench", Name: "/", Discard: true}

// benchIteration sends GET / and discards the body: the engine's own cost.
func benchIteration(ctx context.Context, it *Iter) error {
	_, err := it.HTTP.Do(ctx, &benchReq)
	return err
}

// BenchEngine starts a trivial HTTP endpoint on loopback, drives it at
// full speed with the engine (constant-vus, one connection per VU), then
// with wrk using the same connections and duration, and compares the
// request rates. Both share the machine with the endpoint, as they would
// share it with a real server.
func BenchEngine(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	if o.Connections <= 0 {
		o.Connections = 50
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Threads <= 0 {
		o.Threads = 2
	}
	wrk := o.Wrk
	if wrk == "" {
		p, err := exec.LookPath("wrk")
		if err != nil {
			return nil, errors.New("wrk not found in PATH: install it (Debian/Ubuntu: apt-get install wrk) to compare the engine with it")
		}
		wrk = p
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench endpoint: %w", err)
	}
	body := []byte("ok\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()

	plan := &Plan{Name: "bench", Scenarios: []Scenario{{Name: "bench", Executor: ConstantVUs, VUs: o.Connections,
		Duration: o.Duration, GracefulStop: time.Second}}}
	res, err := Run(ctx, plan, Options{Target: url, Workload: IterationFunc(benchIteration)})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	out := &BenchResult{}
	if m := res.Summary.Metrics[MetricHTTPReqs]; m != nil {
		out.EngineRPS = m.Values["count"] / o.Duration.Seconds()
	}
	if m := res.Summary.Metrics[MetricHTTPReqDuration]; m != nil {
		out.EngineP99 = m.Values["p(99)"]
	}
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	secs := max(int(o.Duration.Round(time.Second)/time.Second), 1)
	cmd := exec.CommandContext(ctx, wrk, "-t"+strconv.Itoa(o.Threads), "-c"+strconv.Itoa(o.Connections),
		"-d"+strconv.Itoa(secs)+"s", url+"/")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("wrk: %w: %s", err, b)
	}
	m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(b)
	if m == nil {
		return out, fmt.Errorf("wrk: no Requests/sec in its output: %s", b)
	}
	out.WrkRPS, _ = strconv.ParseFloat(string(m[1]), 64)
	if out.WrkRPS > 0 {
		out.Ratio = out.EngineRPS / out.WrkRPS
	}
	return out, nil
}
