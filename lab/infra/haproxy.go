package infra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Environment variables of an external HAProxy (HAL9_HAPROXY_URL set: the
// lab starts none).
const (
	// EnvHAProxyURL is the frontend of a load balancer you run; the load
	// goes there.
	EnvHAProxyURL = "HAL9_HAPROXY_URL"
	// EnvHAProxyMetricsURL is its Prometheus exporter (optional: without
	// it the report has no HAProxy numbers).
	EnvHAProxyMetricsURL = "HAL9_HAPROXY_METRICS_URL"
	// EnvHAProxyServers lists the host:port addresses its backend sends
	// to, comma-separated: the lab starts replica i's API listener on the
	// i-th, so there must be as many as replicas.
	EnvHAProxyServers = "HAL9_HAPROXY_SERVERS"
)

const haproxyInstallHint = "install HAProxy 2.4 or newer with its Prometheus exporter (Debian/Ubuntu: apt-get install haproxy), or set HAL9_HAPROXY_URL to a load balancer you run"

// HAProxyOptions configure the HAProxy in front of HAL9 replicas.
type HAProxyOptions struct {
	// Servers are the API listeners (host:port) to balance over, named
	// r0, r1, … in HAProxy's configuration and metrics.
	Servers []string
	// HealthPath is the route of the health checks (default /readyz: a
	// draining or disconnected server answers 503 and leaves the rotation).
	HealthPath string
	// CheckInterval is the time between two checks of one server (default
	// 500ms); Fall failed checks in a row take a server out (default 2),
	// Rise passed ones put it back (default 2).
	CheckInterval time.Duration
	Fall, Rise    int
	// MetricsAddr fixes the Prometheus exporter's address (e.g. one a
	// Prometheus was told before the start); "" takes a free port.
	MetricsAddr string
	// Bin is the haproxy binary ("" : PATH, then /usr/sbin/haproxy).
	Bin string
	// Process: logger, temporary directory, timeouts.
	Process ProcessOptions
}

func (o HAProxyOptions) withDefaults() HAProxyOptions {
	if o.HealthPath == "" {
		o.HealthPath = "/readyz"
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = 500 * time.Millisecond
	}
	if o.Fall <= 0 {
		o.Fall = 2
	}
	if o.Rise <= 0 {
		o.Rise = 2
	}
	return o
}

// Balancer is HAProxy in front of the replicas: a local process this
// program started, or an external one (HAL9_HAPROXY_URL).
type Balancer struct {
	// URL is the frontend (http://host:port): where the load goes.
	URL string
	// MetricsURL is HAProxy's Prometheus exporter (…/metrics); "" when an
	// external one has none configured.
	MetricsURL string
	// Servers are the addresses of its backend's servers r0, r1, ….
	Servers []string
	Mode    Mode // ModeProcess or ModeExternal
	// Process is the local haproxy (nil when external); ConfigPath its
	// generated configuration.
	Process    *Process
	ConfigPath string
}

// Stop stops a local HAProxy and removes its directory (nothing for an
// external one). Safe to call more than once.
func (b *Balancer) Stop(ctx context.Context) error {
	if b == nil || b.Process == nil {
		return nil
	}
	return b.Process.Close(ctx)
}

// ExternalHAProxyServers returns the addresses of HAL9_HAPROXY_SERVERS when
// HAL9_HAPROXY_URL is set (nil otherwise): where the replicas must listen.
func ExternalHAProxyServers() ([]string, error) {
	if os.Getenv(EnvHAProxyURL) == "" {
		return nil, nil
	}
	var out []string
	for _, s := range strings.Split(os.Getenv(EnvHAProxyServers), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("%s: %q is not host:port: %v", EnvHAProxyServers, s, err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is set but %s is empty: list the host:port addresses its backend sends to, where the lab starts the replicas", EnvHAProxyURL, EnvHAProxyServers)
	}
	return out, nil
}

// StartBalancer gives the lab HAProxy in front of opts.Servers: the
// external one when HAL9_HAPROXY_URL is set (its HAL9_HAPROXY_SERVERS must
// be opts.Servers), else a local process (StartHAProxy). It returns once
// HAProxy accepts connections; whether its checks see the servers up is
// the caller's to wait for.
func StartBalancer(ctx context.Context, opts HAProxyOptions) (*Balancer, error) {
	front := os.Getenv(EnvHAProxyURL)
	if front == "" {
		return StartHAProxy(ctx, opts)
	}
	servers, err := ExternalHAProxyServers()
	if err != nil {
		return nil, err
	}
	if strings.Join(servers, ",") != strings.Join(opts.Servers, ",") {
		return nil, fmt.Errorf("%s=%s: the replicas listen on %s; start them on the addresses HAProxy sends to", EnvHAProxyServers, strings.Join(servers, ","), strings.Join(opts.Servers, ","))
	}
	u, err := url.Parse(front)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%s=%q: want http://host:port of HAProxy's frontend", EnvHAProxyURL, front)
	}
	b := &Balancer{URL: strings.TrimRight(front, "/"), MetricsURL: os.Getenv(EnvHAProxyMetricsURL), Servers: servers, Mode: ModeExternal}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := net.Dialer{}
	c, err := d.DialContext(cctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("%s=%s does not answer: %w", EnvHAProxyURL, front, err)
	}
	c.Close()
	return b, nil
}

// StartHAProxy starts haproxy on a free 127.0.0.1 port with a generated
// configuration (haproxyConfig): round robin over opts.Servers, HTTP health
// checks, X-Forwarded-For added, and its Prometheus exporter on a second
// port. It runs in the foreground of its own process group, is stopped
// with SIGTERM and, like the other processes, reaped by the watchdog if
// this program dies. On error nothing is left behind.
func StartHAProxy(ctx context.Context, opts HAProxyOptions) (*Balancer, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("haproxy: no servers to balance over")
	}
	for _, s := range opts.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("haproxy: server %q is not host:port: %v", s, err)
		}
	}
	opts = opts.withDefaults()
	bin, err := findHAProxy(opts.Bin)
	if err != nil {
		return nil, err
	}
	p := &Process{name: "haproxy", stopSig: syscall.SIGTERM, opts: opts.Process, log: opts.Process.logger()}
	if p.dir, err = newProcessDir(opts.Process.TempRoot, "haproxy"); err != nil {
		return nil, err
	}
	p.logPath = filepath.Join(p.dir, "haproxy.log")
	cfgPath := filepath.Join(p.dir, "haproxy.cfg")
	p.startReaper("TERM")
	fail := func(err error) (*Balancer, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		return nil, errors.Join(err, p.Close(cctx))
	}
	metricsAddr := opts.MetricsAddr
	fixedMetrics := metricsAddr != ""
	lastPort := -1
	p.command = func(port int) (string, []string) {
		// A new frontend port (a retry after a lost bind) gets a new
		// exporter port too; a restart keeps both.
		if port != lastPort && !fixedMetrics {
			if mp, err := freePort(); err == nil {
				metricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(mp))
			}
		}
		lastPort = port
		if err := os.WriteFile(cfgPath, []byte(haproxyConfig(opts, port, metricsAddr)), 0o644); err != nil {
			p.log.Warn("infra: write haproxy.cfg", "err", err)
		}
		// -db: foreground, no daemon; -W is not needed (one process).
		return bin, []string{"-db", "-f", cfgPath}
	}
	p.makeURL = func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	p.ready = func(ctx context.Context, _ string) error { return getOK(ctx, "http://"+metricsAddr+"/metrics") }
	p.bindFail = func(tail string) bool {
		return strings.Contains(tail, "cannot bind socket") || strings.Contains(tail, "Address already in use")
	}
	if err := checkHAProxyConfig(ctx, bin, haproxyConfig(opts, 1, "127.0.0.1:2"), p.dir); err != nil {
		return fail(err)
	}
	p.mu.Lock()
	err = p.startLocked(ctx)
	p.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	return &Balancer{URL: p.URL(), MetricsURL: "http://" + metricsAddr + "/metrics", Servers: append([]string(nil), opts.Servers...),
		Mode: ModeProcess, Process: p, ConfigPath: cfgPath}, nil
}

// haproxyConfig renders the configuration: one HTTP frontend, a round
// robin backend whose servers are checked with GET HealthPath, and the
// Prometheus exporter on its own listener.
//
//   - option forwardfor: each request carries X-Forwarded-For with the
//     client's address (the servers honour it with --trusted-proxies).
//   - retries 3, retry-on conn-failure empty-response, option redispatch:
//     a request that could not reach a server (refused: the server is
//     gone but not yet marked down; closed without an answer) is sent to
//     another one, so a killed replica costs only the requests it was
//     answering. A retried request that the dead server had processed runs
//     twice; a client never gets an acknowledgement for a lost write.
//   - No maxconn per server: requests are never queued in HAProxy, so
//     queue numbers stay 0 unless you add one.
func haproxyConfig(o HAProxyOptions, port int, metricsAddr string) string {
	o = o.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by hal9-lab (lab/infra/haproxy.go).
global
  maxconn 2000

defaults
  mode http
  option forwardfor
  option redispatch 1
  retries 3
  retry-on conn-failure empty-response
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  timeout http-request 10s
  timeout queue 30s
  timeout check 2s

frontend hal9
  bind 127.0.0.1:%d
  default_backend hal9

frontend prometheus
  bind %s
  http-request use-service prometheus-exporter if { path /metrics }
  http-request return status 404 content-type text/plain string "HAProxy's metrics are on /metrics\n"

backend hal9
  balance roundrobin
  option httpchk GET %s
  http-check expect status 200
  default-server inter %dms fastinter %dms downinter %dms fall %d rise %d
`, port, metricsAddr, o.HealthPath, o.CheckInterval.Milliseconds(), o.CheckInterval.Milliseconds(), o.CheckInterval.Milliseconds(), o.Fall, o.Rise)
	for i, s := range o.Servers {
		fmt.Fprintf(&b, "  server r%d %s check\n", i, s)
	}
	return b.String()
}

// checkHAProxyConfig runs haproxy -c on the configuration: a version that
// lacks a keyword (the exporter, retry-on) fails here with its own words.
func checkHAProxyConfig(ctx context.Context, bin, cfg, dir string) error {
	path := filepath.Join(dir, "check.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("haproxy: write config: %w", err)
	}
	defer os.Remove(path)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, bin, "-c", "-q", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("haproxy -c refused the generated configuration (%v): %s; %s", err, strings.TrimSpace(string(out)), haproxyInstallHint)
	}
	return nil
}

// findHAProxy returns bin when given, else haproxy from PATH or /usr/sbin.
func findHAProxy(bin string) (string, error) { return findSbin("haproxy", bin, haproxyInstallHint) }

// findSbin returns bin when given (checked), else name from PATH or from
// /usr/sbin, where Debian installs daemons off a normal user's PATH.
func findSbin(name, bin, hint string) (string, error) {
	if bin != "" {
		if !isExecutable(bin) {
			return "", fmt.Errorf("%s binary: %s is not an executable file; %s", name, bin, hint)
		}
		return bin, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if sbin := "/usr/sbin/" + name; isExecutable(sbin) {
		return sbin, nil
	}
	return "", fmt.Errorf("%s binary: not found on PATH nor at /usr/sbin/%s; %s", name, name, hint)
}

// getOK is one GET that must answer 200.
func getOK(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, res.StatusCode)
	}
	return nil
}
