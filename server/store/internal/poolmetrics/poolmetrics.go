// Package poolmetrics exports a database connection pool's statistics under
// the same hal9_db_pool_* names for every backend, so one dashboard works on
// SQLite and PostgreSQL alike (told apart by the db label).
package poolmetrics

import "github.com/prometheus/client_golang/prometheus"

// Stats is one reading of a pool. Counters a backend cannot provide are nil
// and left out of the export rather than reported as a misleading zero.
type Stats struct {
	Acquired, Idle, Total, Max int64
	Acquires                   *int64 // connections handed out, total
	EmptyAcquires              *int64 // acquisitions that had to wait for a connection
	AcquireWaitSeconds         float64
}

// Collector reads Stats at scrape time.
type Collector struct {
	db   string
	read func() Stats

	acquired, idle, total, max, acquires, empty, wait *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a collector labelled db=<db> that calls read on every scrape.
func New(db string, read func() Stats) *Collector {
	labels := prometheus.Labels{"db": db}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("hal9_db_pool_"+name, help, nil, labels)
	}
	return &Collector{
		db: db, read: read,
		acquired: d("acquired_conns", "Connections currently in use."),
		idle:     d("idle_conns", "Connections open and idle."),
		total:    d("total_conns", "Connections open (in use + idle + being opened)."),
		max:      d("max_conns", "Maximum connections the pool may open."),
		acquires: d("acquires_total", "Connections acquired from the pool."),
		empty:    d("empty_acquires_total", "Acquisitions that waited because no idle connection was available."),
		wait:     d("acquire_wait_seconds_total", "Time spent waiting for a connection."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.acquires, c.empty, c.wait} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(s.Acquired))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.Total))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.Max))
	if s.Acquires != nil {
		ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(*s.Acquires))
	}
	if s.EmptyAcquires != nil {
		ch <- prometheus.MustNewConstMetric(c.empty, prometheus.CounterValue, float64(*s.EmptyAcquires))
	}
	ch <- prometheus.MustNewConstMetric(c.wait, prometheus.CounterValue, s.AcquireWaitSeconds)
}

// Join is one collector made of several (a store's pool statistics and its
// group-commit histograms, registered together).
func Join(cs ...prometheus.Collector) prometheus.Collector { return joined(cs) }

type joined []prometheus.Collector

func (j joined) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range j {
		c.Describe(ch)
	}
}

func (j joined) Collect(ch chan<- prometheus.Metric) {
	for _, c := range j {
		c.Collect(ch)
	}
}
