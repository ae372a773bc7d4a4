package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy is an in-process TCP proxy between the server and one backend
// (toxiproxy v2 used as a library): the server is pointed at Addr, and
// network faults are toxics added to it and removed again. With no toxic
// it only copies bytes.
type Proxy struct {
	p *toxiproxy.Proxy
}

var apiServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())

// toxiproxy's toxics log through zerolog's global logger (at trace level,
// on stdout): silence it, the lab reports the faults itself.
func init() { zerolog.SetGlobalLevel(zerolog.Disabled) }

// NewProxy listens on a free loopback port and forwards to upstream
// (host:port).
func NewProxy(name, upstream string) (*Proxy, error) {
	p := toxiproxy.NewProxy(apiServer, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("start the %s proxy to %s: %w", name, upstream, err)
	}
	return &Proxy{p: p}, nil
}

// Addr is where the proxy listens (host:port).
func (p *Proxy) Addr() string { return p.p.Listen }

// Upstream is where it forwards to.
func (p *Proxy) Upstream() string { return p.p.Upstream }

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() { p.p.Stop() }

// toxic is one toxiproxy toxic as its JSON API takes it.
type toxic struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream"`
	Toxicity   float32        `json:"toxicity"`
	Attributes map[string]any `json:"attributes"`
}

// toxicsFor turns a network fault into toxics: latency and bandwidth on
// the replies (downstream), reset and blackhole both ways.
func toxicsFor(s Spec) []toxic {
	switch s.Kind {
	case "latency":
		return []toxic{{Name: "latency", Type: "latency", Stream: "downstream", Toxicity: 1,
			Attributes: map[string]any{"latency": s.Latency.Milliseconds(), "jitter": s.Jitter.Milliseconds()}}}
	case "bandwidth":
		return []toxic{{Name: "bandwidth", Type: "bandwidth", Stream: "downstream", Toxicity: 1,
			Attributes: map[string]any{"rate": s.KBps}}}
	case "reset":
		return []toxic{
			{Name: "reset_up", Type: "reset_peer", Stream: "upstream", Toxicity: 1, Attributes: map[string]any{"timeout": s.After.Milliseconds()}},
			{Name: "reset_down", Type: "reset_peer", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"timeout": s.After.Milliseconds()}},
		}
	case "blackhole":
		return []toxic{
			{Name: "blackhole_up", Type: "timeout", Stream: "upstream", Toxicity: 1, Attributes: map[string]any{"timeout": 0}},
			{Name: "blackhole_down", Type: "timeout", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"timeout": 0}},
		}
	}
	return nil
}

// Inject adds the fault's toxics; existing connections get them too.
func (p *Proxy) Inject(s Spec) error {
	for _, t := range toxicsFor(s) {
		b, _ := json.Marshal(t)
		if _, err := p.p.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
			return fmt.Errorf("add %s toxic to the %s proxy: %w", t.Type, p.p.Name, err)
		}
	}
	return nil
}

// Heal removes the fault's toxics.
func (p *Proxy) Heal(ctx context.Context, s Spec) error {
	for _, t := range toxicsFor(s) {
		if err := p.p.Toxics.RemoveToxic(ctx, t.Name); err != nil {
			return fmt.Errorf("remove %s toxic from the %s proxy: %w", t.Type, p.p.Name, err)
		}
	}
	// A black hole swallowed bytes mid-protocol: the connections it held
	// are broken for good, so close them and let the clients reconnect.
	if s.Kind == "blackhole" {
		p.p.Stop()
		if err := p.p.Start(); err != nil {
			return fmt.Errorf("restart the %s proxy after the black hole: %w", p.p.Name, err)
		}
	}
	return nil
}

// ThroughProxy rewrites a backend URL (postgres://…, redis://…) to go
// through a new proxy on a free port; the proxy is returned with it.
func ThroughProxy(name, rawURL string) (*Proxy, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("proxy %s: parse the backend URL: %w", name, err)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return nil, "", fmt.Errorf("proxy %s: the backend URL has no host:port: %w", name, err)
	}
	p, err := NewProxy(name, u.Host)
	if err != nil {
		return nil, "", err
	}
	u.Host = p.Addr()
	return p, u.String(), nil
}
