// Package prom runs a real Prometheus (Debian's `prometheus` binary) for a
// lab run, queries it over the HTTP API, and checks that every dashboard
// panel query and every rule expression of the repository returns data.
package prom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// Target is one scrape job.
type Target struct {
	Job         string // job label, e.g. "hal9" (the alert rules expect this name for the server) or "hal9lab"
	Addr        string // host:port, e.g. the server's admin listener 127.0.0.1:9091
	MetricsPath string // default /metrics
}

// Options configure Start.
type Options struct {
	Binary         string        // default: "prometheus" found on PATH
	Targets        []Target      // at least one
	ScrapeInterval time.Duration // default 1s: fast enough for short lab runs
	RuleFiles      []string      // rule files to load (e.g. alerts/*.rules.yml), evaluated every ScrapeInterval
	Dir            string        // working dir (config, TSDB, log); default a temp dir removed by Stop
	ReadyTimeout   time.Duration // default 30s
	Logger         *slog.Logger
}

// Server is a running Prometheus. Its Client queries it.
type Server struct {
	Client
	Addr string // 127.0.0.1:PORT

	cmd     *exec.Cmd
	dir     string
	ownDir  bool
	logPath string
	log     *slog.Logger
	done    chan struct{} // closed when the process exits
	waitErr error
	stop    sync.Once
}

// Start writes a config scraping opts.Targets, starts Prometheus on a free
// loopback port and waits until /-/ready answers. Stop it with Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if len(opts.Targets) == 0 {
		return nil, errors.New("start prometheus: no scrape targets (set Options.Targets)")
	}
	for i, t := range opts.Targets {
		if t.Job == "" {
			return nil, fmt.Errorf("start prometheus: target %d (%s) has no job name", i, t.Addr)
		}
		if _, _, err := net.SplitHostPort(t.Addr); err != nil {
			return nil, fmt.Errorf("start prometheus: target %q address %q is not host:port: %w", t.Job, t.Addr, err)
		}
	}
	if opts.Binary == "" {
		opts.Binary = "prometheus"
	}
	bin, err := exec.LookPath(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("start prometheus: %q not found (install Debian's prometheus package or set Options.Binary): %w", opts.Binary, err)
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: opts.Logger, dir: opts.Dir}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "hal9-prom-*"); err != nil {
			return nil, fmt.Errorf("start prometheus: temp dir: %w", err)
		}
		s.ownDir = true
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("start prometheus: dir %s: %w", s.dir, err)
	}
	cfgPath := filepath.Join(s.dir, "prometheus.yml")
	cfg, err := configYAML(opts)
	if err != nil {
		s.cleanup()
		return nil, err
	}
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("start prometheus: write config: %w", err)
	}
	// A port picked by the kernel can be taken by someone else before
	// Prometheus binds it; try a few times.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if lastErr = s.launch(ctx, bin, cfgPath, opts.ReadyTimeout); lastErr == nil {
			opts.Logger.Info("prometheus ready", "url", s.BaseURL, "dir", s.dir, "targets", len(opts.Targets))
			return s, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	s.cleanup()
	return nil, lastErr
}

func configYAML(opts Options) ([]byte, error) {
	type staticConfig struct {
		Targets []string `yaml:"targets"`
	}
	type scrape struct {
		JobName        string         `yaml:"job_name"`
		ScrapeInterval string         `yaml:"scrape_interval"`
		ScrapeTimeout  string         `yaml:"scrape_timeout"`
		MetricsPath    string         `yaml:"metrics_path"`
		Static         []staticConfig `yaml:"static_configs"`
	}
	interval := opts.ScrapeInterval.String()
	cfg := struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			EvaluationInterval string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		RuleFiles []string `yaml:"rule_files,omitempty"`
		Scrape    []scrape `yaml:"scrape_configs"`
	}{}
	cfg.Global.ScrapeInterval, cfg.Global.EvaluationInterval = interval, interval
	for _, f := range opts.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("start prometheus: rule file %s: %w", f, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("start prometheus: rule file: %w", err)
		}
		cfg.RuleFiles = append(cfg.RuleFiles, abs)
	}
	byJob := map[string]int{}
	for _, t := range opts.Targets {
		path := t.MetricsPath
		if path == "" {
			path = "/metrics"
		}
		if i, ok := byJob[t.Job]; ok && cfg.Scrape[i].MetricsPath == path {
			cfg.Scrape[i].Static[0].Targets = append(cfg.Scrape[i].Static[0].Targets, t.Addr)
			continue
		}
		if _, ok := byJob[t.Job]; ok {
			return nil, fmt.Errorf("start prometheus: job %q has targets with different metrics paths; give them separate jobs", t.Job)
		}
		byJob[t.Job] = len(cfg.Scrape)
		cfg.Scrape = append(cfg.Scrape, scrape{
			JobName: t.Job, ScrapeInterval: interval, ScrapeTimeout: interval, MetricsPath: path,
			Static: []staticConfig{{Targets: []string{t.Addr}}},
		})
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("start prometheus: render config: %w", err)
	}
	return b, nil
}

func (s *Server) launch(ctx context.Context, bin, cfgPath string, readyTimeout time.Duration) error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("start prometheus: %w", err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.BaseURL = "http://" + s.Addr
	s.logPath = filepath.Join(s.dir, "prometheus.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return fmt.Errorf("start prometheus: log file: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	// Not exec.CommandContext: the process must outlive ctx (Start's
	// context bounds the start-up, not the server's life).
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(s.dir, "data"),
		"--web.listen-address="+s.Addr,
		"--web.enable-lifecycle",
		"--storage.tsdb.retention.time=1d",
		"--log.level=warn",
	)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start prometheus %s: %w", bin, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx, readyTimeout); err != nil {
		s.kill()
		return fmt.Errorf("start prometheus on %s: %w; log:\n%s", s.Addr, err, s.logTail())
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.BaseURL+"/-/ready", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("exited before it was ready: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// WaitForScrapes waits until every job has at least n successful scrapes
// (count_over_time(up[...]) with up == 1), bounded by ctx.
func (s *Server) WaitForScrapes(ctx context.Context, jobs []string, n int) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ok := true
		for _, job := range jobs {
			got, err := s.EvalRange(ctx, fmt.Sprintf(`up{job=%q} == 1`, job), time.Now().Add(-10*time.Minute), time.Now(), time.Second)
			if err != nil || len(got) == 0 || len(got[0].Points) < n {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d scrapes of %v: %w; log:\n%s", n, jobs, ctx.Err(), s.logTail())
		case <-s.done:
			return fmt.Errorf("wait for scrapes: prometheus exited: %v; log:\n%s", s.waitErr, s.logTail())
		case <-tick.C:
		}
	}
}

// Dir is the working directory (config, TSDB, prometheus.log).
func (s *Server) Dir() string { return s.dir }

// Stop terminates Prometheus (SIGTERM to its process group, SIGKILL when ctx
// ends first) and removes the temp dir it created.
func (s *Server) Stop(ctx context.Context) error {
	var err error
	s.stop.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			terminate(s.cmd)
			select {
			case <-s.done:
			case <-ctx.Done():
				s.kill()
				err = fmt.Errorf("stop prometheus: killed after %w", ctx.Err())
			case <-time.After(10 * time.Second):
				s.kill()
			}
		}
		s.cleanup()
	})
	return err
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	killGroup(s.cmd)
	<-s.done
}

func (s *Server) cleanup() {
	if s.ownDir && s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePort returns a loopback port free at the time of the call.
func FreePort() (int, error) { return freePort() }
