package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hal9-lab/hal9-lab/lab/profiles"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

// sidecars are what a session runs beside its legs: the profile receiver
// (pyroscope-go's ingest), the lab's own /metrics (hal9lab_*), and with
// --prometheus a real Prometheus scraping the servers on fixed addresses.
type sidecars struct {
	recv    *profiles.Receiver
	recvURL string // where the servers send profiles: the receiver, or --pyroscope-url
	reg     *prometheus.Registry
	metrics string // the lab's /metrics address
	servers []*http.Server
	prom    *prom.Server // nil without --prometheus
	// The fixed addresses Prometheus scrapes: each replica's admin
	// listener (adminAddrs[0] for one server) and HAProxy's exporter.
	adminAddrs []string
	lbMetrics  string
}

// startSidecars starts the receiver, the lab's /metrics and, with
// o.Prometheus, Prometheus.
func startSidecars(ctx context.Context, o Options, step func(string, ...any)) (*sidecars, error) {
	sc := &sidecars{recv: profiles.NewReceiver(o.Logger), reg: prometheus.NewRegistry()}
	recvAddr, err := sc.serve(sc.recv)
	if err != nil {
		return nil, fmt.Errorf("start the profile receiver: %w", err)
	}
	sc.recvURL = "http://" + recvAddr
	if o.PyroscopeURL != "" {
		sc.recvURL = o.PyroscopeURL
	}
	sc.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(sc.reg, promhttp.HandlerOpts{}))
	if sc.metrics, err = sc.serve(mux); err != nil {
		sc.close()
		return nil, fmt.Errorf("start the lab's /metrics: %w", err)
	}
	step("profiles to %s, lab metrics on http://%s/metrics", sc.recvURL, sc.metrics)
	if !o.Prometheus {
		return sc, nil
	}
	targets, err := sc.promTargets(o.Replicas)
	if err != nil {
		sc.close()
		return nil, err
	}
	rules, _ := filepath.Glob(filepath.Join(o.Root, "alerts", "*.rules.yml"))
	if sc.prom, err = prom.Start(ctx, prom.Options{Targets: targets, RuleFiles: rules, Logger: o.Logger}); err != nil {
		sc.close()
		return nil, fmt.Errorf("--prometheus: %w", err)
	}
	step("Prometheus on http://%s scraping the server (%s) and the lab", sc.prom.Addr, sc.adminAddr())
	return sc, nil
}

// promTargets picks the fixed addresses a --prometheus run scrapes: each
// replica's admin listener (job hal9), HAProxy's exporter (job haproxy,
// with replicas) and the lab's own /metrics (job hal9lab).
func (sc *sidecars) promTargets(replicas int) ([]prom.Target, error) {
	var targets []prom.Target
	for i := 0; i < max(replicas, 1); i++ {
		a, err := serve.FreeAddr()
		if err != nil {
			return nil, err
		}
		sc.adminAddrs = append(sc.adminAddrs, a)
		targets = append(targets, prom.Target{Job: "hal9", Addr: a})
	}
	if replicas > 1 {
		a, err := serve.FreeAddr()
		if err != nil {
			return nil, err
		}
		sc.lbMetrics = a
		targets = append(targets, prom.Target{Job: "haproxy", Addr: a})
	}
	return append(targets, prom.Target{Job: "hal9lab", Addr: sc.metrics}), nil
}

// adminAddr is the first server's fixed admin address ("" : a free port).
func (sc *sidecars) adminAddr() string {
	if len(sc.adminAddrs) == 0 {
		return ""
	}
	return sc.adminAddrs[0]
}

// serve starts h on a free loopback port.
func (sc *sidecars) serve(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	sc.servers = append(sc.servers, srv)
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), nil
}

// close stops what startSidecars started.
func (sc *sidecars) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if sc.prom != nil {
		_ = sc.prom.Stop(ctx)
		sc.prom = nil
	}
	for _, srv := range sc.servers {
		_ = srv.Shutdown(ctx)
	}
	sc.servers = nil
}
