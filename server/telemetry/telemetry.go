// Package telemetry sets up what the server exports about itself: the
// Prometheus registry (Go, process and build-info collectors), the JSON slog
// logger, and continuous profiling with pyroscope-go.
package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/grafana/pyroscope-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Build identifies the running binary.
type Build struct {
	Version  string // "dev" when empty
	Revision string // VCS revision; read from the binary's build info when empty
}

func (b Build) withDefaults() Build {
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Revision == "" {
		b.Revision = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					b.Revision = s.Value
				}
			}
		}
	}
	return b
}

// NewRegistry returns a fresh registry with the Go and process collectors
// and hal9_build_info{version,goversion,revision} = 1.
func NewRegistry(b Build) *prometheus.Registry {
	b = b.withDefaults()
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hal9_build_info",
		Help: "Always 1; the labels identify the running build.",
		ConstLabels: prometheus.Labels{
			"version":   b.Version,
			"goversion": runtime.Version(),
			"revision":  b.Revision,
		},
	})
	info.Set(1)
	reg.MustRegister(info)
	return reg
}

// CapacityMetric is the gauge of a server's rated capacity.
const CapacityMetric = "hal9_capacity_requests_per_second"

// RegisterCapacity exports rps, the server's rated capacity (--capacity-rps),
// as CapacityMetric. With rps 0 nothing is registered: the capacity rules
// divide by the sum of this gauge, so a server without a rating must be
// absent from it rather than rated 0.
func RegisterCapacity(reg prometheus.Registerer, rps float64) {
	if rps <= 0 {
		return
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: CapacityMetric,
		Help: "Rated capacity of this server: the request rate it carries within its SLO on its machine class (the knee `make capacity` measures), from --capacity-rps.",
	})
	g.Set(rps)
	reg.MustRegister(g)
}

// ParseLevel reads debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return 0, fmt.Errorf("log level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns a JSON logger writing to w at the given level.
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	l, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// ProfilingOptions configure continuous profiling.
type ProfilingOptions struct {
	ServerURL string // the pyroscope ingest URL (http or https); required
	Version   string
	Instance  string // tags the profiles, e.g. the API listen address
	Logger    *slog.Logger
	// MutexFraction and BlockRate set runtime.SetMutexProfileFraction and
	// runtime.SetBlockProfileRate; 0 takes modest defaults (5 and 10 µs)
	// that keep the overhead low under load.
	MutexFraction int
	BlockRate     int
}

// ProfileTypes are the profiles sent: CPU, allocations, in-use memory,
// goroutines, mutex and block contention.
var ProfileTypes = []pyroscope.ProfileType{
	pyroscope.ProfileCPU,
	pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
	pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace,
	pyroscope.ProfileGoroutines,
	pyroscope.ProfileMutexCount, pyroscope.ProfileMutexDuration,
	pyroscope.ProfileBlockCount, pyroscope.ProfileBlockDuration,
}

// StartProfiling starts pyroscope-go; the returned stop flushes and stops it
// and restores the runtime's mutex and block profiling rates.
func StartProfiling(o ProfilingOptions) (stop func() error, err error) {
	u, err := url.Parse(o.ServerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pyroscope url %q: want http://host:port or https://host", o.ServerURL)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MutexFraction <= 0 {
		o.MutexFraction = 5
	}
	if o.BlockRate <= 0 {
		o.BlockRate = 10_000 // ns: sample blocking events of about 10 µs
	}
	prevMutex := runtime.SetMutexProfileFraction(o.MutexFraction)
	runtime.SetBlockProfileRate(o.BlockRate)
	tags := map[string]string{"version": o.Version, "instance": o.Instance}
	if tags["version"] == "" {
		tags["version"] = "dev"
	}
	if tags["instance"] == "" {
		tags["instance"] = "unknown"
	}
	p, err := pyroscope.Start(pyroscope.Config{
		ApplicationName: "hal9",
		ServerAddress:   o.ServerURL,
		Tags:            tags,
		ProfileTypes:    ProfileTypes,
		Logger:          slogAdapter{o.Logger.With("component", "pyroscope")},
	})
	if err != nil {
		runtime.SetMutexProfileFraction(prevMutex)
		runtime.SetBlockProfileRate(0)
		return nil, fmt.Errorf("start pyroscope for %s: %w", o.ServerURL, err)
	}
	o.Logger.Info("continuous profiling on", "pyroscope_url", o.ServerURL, "application", "hal9")
	return func() error {
		// Flush first: Stop alone may drop uploads still queued, and the
		// last interval is what a short lab leg needs most.
		p.Flush(true)
		err := p.Stop()
		runtime.SetMutexProfileFraction(prevMutex)
		runtime.SetBlockProfileRate(0)
		return err
	}, nil
}

// slogAdapter lets pyroscope log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Infof(f string, args ...any)  { a.l.Debug(fmt.Sprintf(f, args...)) }
func (a slogAdapter) Debugf(f string, args ...any) { a.l.Debug(fmt.Sprintf(f, args...)) }
func (a slogAdapter) Errorf(f string, args ...any) { a.l.Warn(fmt.Sprintf(f, args...)) }
