// Package loadbench measures the load engine against the field's HTTP
// load generators: `hal9-lab bench engine`. A trivial endpoint runs in a
// process of its own (`hal9-lab bench endpoint`); the engine (`hal9-lab
// load` of a constant-vus scenario, in a child process), engines of other
// builds, wrk and vegeta (when installed) take turns driving it with the
// same connections for the same time, round after round, and each
// client's CPU is read from its own rusage. The result is each client's
// request rate and its requests per CPU second: what it leaves of the
// cores to the server under test.
package loadbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

// Options configure Run.
type Options struct {
	Connections int           // engine VUs, wrk -c, vegeta workers (default 64)
	Duration    time.Duration // of each client in each round (default 8s)
	Rounds      int           // default 3
	Threads     int           // wrk -t (default 2)
	// Lab is the hal9-lab binary: it serves the endpoint and runs the
	// engine. Others are hal9-lab binaries of other builds whose engines
	// take their turns too (main's: before and after in one run).
	Lab    string
	Others []string
	// Wrk and Vegeta are their paths; "" looks them up in PATH (wrk is
	// required, vegeta is skipped when missing).
	Wrk, Vegeta string
	Progress    io.Writer // a line per client run; nil for none
}

// Round is one client's run.
type Round struct {
	Requests  float64       // responses received
	RPS       float64       // Requests over the duration
	CPU       time.Duration // the client process's user + system time
	ServerCPU time.Duration // the endpoint's over the same run
}

// Client is one load generator's rounds.
type Client struct {
	Name   string
	Rounds []Round
}

// Result is a whole bench.
type Result struct {
	Options                 Options
	Clients                 []Client
	LoadBefore, LoadAfter   string // /proc/loadavg's first three fields
	EndpointPID             int
	engineScenario, workDir string
}

// Run runs the bench.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.Connections = cmp0(o.Connections, 64)
	o.Duration = cmp0(o.Duration, 8*time.Second)
	o.Rounds = cmp0(o.Rounds, 3)
	o.Threads = cmp0(o.Threads, 2)
	if o.Lab == "" {
		return nil, errors.New("loadbench: no hal9-lab binary to run the endpoint and the engine")
	}
	if o.Duration < time.Second || o.Duration%time.Second != 0 {
		return nil, fmt.Errorf("loadbench: duration %s must be whole seconds, at least 1s (wrk counts in seconds)", o.Duration)
	}
	var err error
	if o.Wrk, err = lookPath(o.Wrk, "wrk"); err != nil {
		return nil, errors.New("wrk not found in PATH: install it (Debian/Ubuntu: apt-get install wrk) to compare the engine with it")
	}
	if o.Vegeta, err = lookPath(o.Vegeta, "vegeta"); err != nil {
		o.Vegeta = "" // optional: go install github.com/tsenart/vegeta/v12@latest
	}
	dir, err := os.MkdirTemp("", "hal9-loadbench-")
	if err != nil {
		return nil, fmt.Errorf("loadbench: %w", err)
	}
	defer os.RemoveAll(dir)
	res := &Result{Options: o, LoadBefore: loadAvg(), workDir: dir, engineScenario: filepath.Join(dir, "engine.yaml")}
	if err := os.WriteFile(res.engineScenario, []byte(engineScenario(o)), 0o644); err != nil {
		return nil, fmt.Errorf("loadbench: %w", err)
	}
	ep, err := startEndpoint(ctx, o.Lab)
	if err != nil {
		return nil, err
	}
	defer ep.stop()
	res.EndpointPID = ep.cmd.Process.Pid

	clients := []client{{name: "engine", run: res.engineRun(o.Lab)}}
	for _, b := range o.Others {
		clients = append(clients, client{name: "engine " + b, run: res.engineRun(b)})
	}
	clients = append(clients, client{name: "wrk", run: res.wrkRun})
	if o.Vegeta != "" {
		clients = append(clients, client{name: "vegeta", run: res.vegetaRun})
	}
	res.Clients = make([]Client, len(clients))
	for i, c := range clients {
		res.Clients[i].Name = c.name
	}
	for round := range o.Rounds {
		order := make([]int, len(clients))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 { // alternate, so no client always runs after the same one
			slices.Reverse(order)
		}
		for _, i := range order {
			c := clients[i]
			s0, err := ep.cpu(ctx)
			if err != nil {
				return res, err
			}
			r, err := c.run(ctx, ep.url)
			if err != nil {
				return res, fmt.Errorf("%s: %w", c.name, err)
			}
			s1, err := ep.cpu(ctx)
			if err != nil {
				return res, err
			}
			r.ServerCPU = s1 - s0
			r.RPS = r.Requests / o.Duration.Seconds()
			res.Clients[i].Rounds = append(res.Clients[i].Rounds, r)
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "round %d: %-8s %9.0f req/s, %6.2f s CPU (%s)\n", round+1, c.name, r.RPS, r.CPU.Seconds(), loadAvg())
			}
		}
	}
	res.LoadAfter = loadAvg()
	return res, nil
}

func cmp0[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func lookPath(p, name string) (string, error) {
	if p != "" {
		return p, nil
	}
	return exec.LookPath(name)
}

// client runs one round against url.
type client struct {
	name string
	run  func(ctx context.Context, url string) (Round, error)
}

// engineScenario is the engine's side: constant-vus, one connection per
// VU, GET / checked for its status (the http workload, as a user's
// `hal9-lab load` would run it).
func engineScenario(o Options) string {
	return fmt.Sprintf(`name: bench-engine
description: hal9-lab bench engine's client side (generated)
workload:
  kind: http
  requests:
    - {method: GET, path: /}
scenarios:
  bench:
    executor: constant-vus
    vus: %d
    duration: %s
    gracefulStop: 2s
`, o.Connections, o.Duration)
}

// engineRun runs `lab load` of the bench scenario; the requests are its
// summary's http_reqs.
func (res *Result) engineRun(lab string) func(context.Context, string) (Round, error) {
	return func(ctx context.Context, url string) (Round, error) {
		sum := filepath.Join(res.workDir, "summary.json")
		os.Remove(sum)
		out, r, err := runMeasured(ctx, lab, "load", res.engineScenario, "--target", url, "--quiet", "--summary-export", sum)
		if err != nil {
			return r, fmt.Errorf("%w: %s", err, tail(out))
		}
		s, err := load.ReadSummary(sum)
		if err != nil {
			return r, err
		}
		m := s.Metrics[load.MetricHTTPReqs]
		if m == nil || m.Values["count"] <= 0 {
			return r, fmt.Errorf("no http_reqs in its summary: %s", tail(out))
		}
		r.Requests = m.Values["count"]
		return r, nil
	}
}

var wrkRate = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)

func (res *Result) wrkRun(ctx context.Context, url string) (Round, error) {
	o := res.Options
	out, r, err := runMeasured(ctx, o.Wrk, "-t"+strconv.Itoa(o.Threads), "-c"+strconv.Itoa(o.Connections),
		"-d"+strconv.Itoa(int(o.Duration/time.Second))+"s", url+"/")
	if err != nil {
		return r, fmt.Errorf("%w: %s", err, tail(out))
	}
	n, err := parseWrk(out)
	r.Requests = n
	return r, err
}

// parseWrk reads the request count from wrk's "N requests in 8.00s".
func parseWrk(out []byte) (float64, error) {
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no request count in its output: %s", tail(out))
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func (res *Result) vegetaRun(ctx context.Context, url string) (Round, error) {
	o := res.Options
	results := filepath.Join(res.workDir, "vegeta.bin")
	n := strconv.Itoa(o.Connections)
	cmd := exec.CommandContext(ctx, o.Vegeta, "attack", "-rate=0", "-workers="+n, "-max-workers="+n, "-max-connections="+n,
		"-duration="+o.Duration.String(), "-output="+results)
	cmd.Stdin = strings.NewReader("GET " + url + "/\n")
	out, r, err := measured(cmd)
	if err != nil {
		return r, fmt.Errorf("%w: %s", err, tail(out))
	}
	rep, err := exec.CommandContext(ctx, o.Vegeta, "report", "-type=json", results).Output()
	if err != nil {
		return r, fmt.Errorf("vegeta report: %w", err)
	}
	r.Requests, err = parseVegeta(rep)
	return r, err
}

// parseVegeta reads the responses (those with a status) from vegeta's
// JSON report.
func parseVegeta(rep []byte) (float64, error) {
	var v struct {
		Requests    float64        `json:"requests"`
		StatusCodes map[string]int `json:"status_codes"`
	}
	if err := json.Unmarshal(rep, &v); err != nil {
		return 0, fmt.Errorf("vegeta report: %w", err)
	}
	n := v.Requests - float64(v.StatusCodes["0"])
	if n <= 0 {
		return 0, fmt.Errorf("vegeta got no responses: %s", tail(rep))
	}
	return n, nil
}

func runMeasured(ctx context.Context, name string, args ...string) ([]byte, Round, error) {
	return measured(exec.CommandContext(ctx, name, args...))
}

// measured runs cmd and reads its CPU time from its rusage.
func measured(cmd *exec.Cmd) ([]byte, Round, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var r Round
	if cmd.ProcessState != nil {
		r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return out.Bytes(), r, err
}

func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return string(b)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// endpoint is the running `hal9-lab bench endpoint` process.
type endpoint struct {
	cmd *exec.Cmd
	url string
}

func startEndpoint(ctx context.Context, lab string) (*endpoint, error) {
	cmd := exec.CommandContext(ctx, lab, "bench", "endpoint")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the endpoint (%s bench endpoint): %w", lab, err)
	}
	ep := &endpoint{cmd: cmd}
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 256)
		n, _ := io.ReadAtLeast(stdout, b, 1)
		line <- string(b[:n])
		io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		ep.url = strings.TrimSpace(l)
	case <-time.After(10 * time.Second):
	}
	if !strings.HasPrefix(ep.url, "http://") {
		ep.stop()
		return nil, fmt.Errorf("the endpoint (%s bench endpoint) did not print its URL (got %q)", lab, ep.url)
	}
	return ep, nil
}

func (ep *endpoint) stop() {
	ep.cmd.Process.Signal(syscall.SIGTERM)
	ep.cmd.Wait()
}

// cpu asks the endpoint for its own CPU time so far.
func (ep *endpoint) cpu(ctx context.Context) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.url+cpuPath, nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("endpoint CPU: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, fmt.Errorf("endpoint CPU: %w", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("endpoint CPU: %q: %w", b, err)
	}
	return time.Duration(ns), nil
}

// cpuPath is where the endpoint tells its CPU time (nanoseconds, user +
// system): the bench reads it around each client's run.
const cpuPath = "/_cpu"

// Endpoint serves the bench's trivial endpoint on a free loopback port
// until ctx ends: "ok\n" as text/plain to any request (a plain Go net/http
// server, as the measurements used), and its own CPU time at
// /_cpu. It prints its base URL on w first.
func Endpoint(ctx context.Context, w io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench endpoint: %w", err)
	}
	body := []byte("ok\n")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	mux.HandleFunc(cpuPath, func(w http.ResponseWriter, _ *http.Request) {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Fprintf(w, "%d\n", ru.Utime.Nano()+ru.Stime.Nano())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(w, "http://%s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("bench endpoint: %w", err)
	}
	return nil
}

// Median is the median of f over the rounds.
func (c Client) Median(f func(Round) float64) float64 {
	v := make([]float64, len(c.Rounds))
	for i, r := range c.Rounds {
		v[i] = f(r)
	}
	slices.Sort(v)
	switch n := len(v); {
	case n == 0:
		return 0
	case n%2 == 1:
		return v[n/2]
	default:
		return (v[n/2-1] + v[n/2]) / 2
	}
}

// PerCPUSecond is a round's requests per CPU second of the client.
func PerCPUSecond(r Round) float64 {
	if r.CPU <= 0 {
		return 0
	}
	return r.Requests / r.CPU.Seconds()
}

// RPS is a round's request rate.
func RPS(r Round) float64 { return r.RPS }

// ServerMicros is the endpoint's CPU per request in a round (µs).
func ServerMicros(r Round) float64 {
	if r.Requests <= 0 {
		return 0
	}
	return r.ServerCPU.Seconds() / r.Requests * 1e6
}

// ClientMicros is the client's CPU per request in a round (µs).
func ClientMicros(r Round) float64 {
	if r.Requests <= 0 {
		return 0
	}
	return r.CPU.Seconds() / r.Requests * 1e6
}

// Client returns the named client's rounds, or nil.
func (res *Result) Client(name string) *Client {
	for i := range res.Clients {
		if res.Clients[i].Name == name {
			return &res.Clients[i]
		}
	}
	return nil
}

// WriteTable prints the medians per client beside wrk's.
func (res *Result) WriteTable(w io.Writer) {
	o := res.Options
	fmt.Fprintf(w, "bench engine: %d connections, %s per client, %d rounds alternated; endpoint: a separate Go net/http process (pid %d); load average %s before, %s after\n",
		o.Connections, o.Duration, len(res.Client("wrk").Rounds), res.EndpointPID, res.LoadBefore, res.LoadAfter)
	wrk := res.Client("wrk")
	wrkRPS, wrkEff := wrk.Median(RPS), wrk.Median(PerCPUSecond)
	fmt.Fprintf(w, "%-28s %-30s %10s %7s %14s %7s %12s %12s\n", "client", "req/s by round", "median", "× wrk", "req/CPU-s", "× wrk", "client µs/req", "server µs/req")
	for _, c := range res.Clients {
		var rounds []string
		for _, r := range c.Rounds {
			rounds = append(rounds, strconv.FormatFloat(r.RPS, 'f', 0, 64))
		}
		rps, eff := c.Median(RPS), c.Median(PerCPUSecond)
		fmt.Fprintf(w, "%-28s %-30s %10.0f %7.2f %14.0f %7.2f %12.2f %12.2f\n", shorten(c.Name, 28), strings.Join(rounds, " "),
			rps, ratio(rps, wrkRPS), eff, ratio(eff, wrkEff), c.Median(ClientMicros), c.Median(ServerMicros))
	}
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}
