package load

import (
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sink collects every sample of a run into sharded aggregates. Each VU
// records through a recorder of its own, which batches samples and moves
// them into its shard, so recording takes no lock shared with other VUs.
type sink struct {
	metrics []*Metric // frozen registry, by id
	byName  map[string]*Metric
	shards  []*shard
	next    atomic.Uint32
	prom    *promMetrics

	httpReqs, httpDur, httpFailed, httpWaiting, dataSent, dataRecv *Metric
	iterations, iterDur, iterResp, checks, dropped                 *Metric

	// Gauges are written by the engine alone, once a second.
	gmu    sync.Mutex
	gauges map[stateKey]*agg

	recMu sync.Mutex
	recs  []*recorder // every recorder, for flushAll

	tickMu  sync.Mutex // serialises ticks
	secMu   sync.Mutex // guards sec: taken once per batch and by the tick
	sec     secAgg
	started time.Time
}

func newSink(reg *Registry, prom *promMetrics) *sink {
	ms := reg.freeze()
	s := &sink{metrics: ms, byName: map[string]*Metric{}, prom: prom, gauges: map[stateKey]*agg{}}
	for _, m := range ms {
		s.byName[m.Name] = m
	}
	n := 2 * runtime.GOMAXPROCS(0)
	n = min(max(n, 2), 16)
	s.shards = make([]*shard, n)
	for i := range s.shards {
		s.shards[i] = newShard()
	}
	s.sec = newSecAgg(len(ms))
	s.httpReqs, s.httpDur, s.httpFailed = s.byName[MetricHTTPReqs], s.byName[MetricHTTPReqDuration], s.byName[MetricHTTPReqFailed]
	s.httpWaiting, s.dataSent, s.dataRecv = s.byName[MetricHTTPReqWaiting], s.byName[MetricDataSent], s.byName[MetricDataReceived]
	s.iterations, s.iterDur, s.iterResp = s.byName[MetricIterations], s.byName[MetricIterDuration], s.byName[MetricIterResponse]
	s.checks, s.dropped = s.byName[MetricChecks], s.byName[MetricDropped]
	return s
}

// recorderBatch is how many samples a recorder holds before it moves them
// into its shard (4 KiB a VU): the shard's lock is taken once per batch,
// and otherwise only by the once-a-second tick and by snapshots, which
// take every recorder's samples first.
const recorderBatch = 64

// recorder is one VU's handle on the sink (and the scheduler's, for
// drops): its series, looked up once, and its batch of samples.
type recorder struct {
	s        *sink
	sh       *shard
	scenario string
	// The series maps are the owner's alone; samples hold their series.
	http   map[httpKey]*httpSeries
	iter   *iterSeries
	checks map[string]*checkSeries

	mu  sync.Mutex // the owner's appends against flushAll; never contended by other VUs
	buf []sample
}

type sampleKind uint8

const (
	sampleHTTP sampleKind = iota + 1
	sampleIteration
	sampleCheck
	sampleCustom
	sampleDropped
)

// sample is one recorded sample waiting in a recorder's batch: an HTTP
// request (series, duration, waiting, failed, bytes), an iteration
// (duration, response time), a check (series, ok), a custom metric's value
// or dropped iterations (n).
type sample struct {
	kind   sampleKind
	flag   bool // http: failed; check: ok
	http   *httpSeries
	check  *checkSeries
	metric *Metric
	d1, d2 time.Duration
	v      float64
	n1, n2 int64
}

type checkSeries struct {
	agg        *agg
	pass, fail prometheus.Counter
}

type httpSeries struct {
	timed                               bool // a response came (status not "0"): it has a duration
	reqs, dur, wait, failed, sent, recv *agg
	promReqs, promFailed                prometheus.Counter
	promDur                             prometheus.Observer
}

type iterSeries struct {
	iters, dur, resp, dropped *agg
	promIters, promDropped    prometheus.Counter
	promResp                  prometheus.Observer
}

func (s *sink) recorder(scenario string) *recorder {
	sh := s.shards[int(s.next.Add(1))%len(s.shards)]
	r := &recorder{s: s, sh: sh, scenario: scenario, http: map[httpKey]*httpSeries{}, checks: map[string]*checkSeries{}}
	t := Tags{Scenario: scenario}
	sh.mu.Lock()
	r.iter = &iterSeries{
		iters: sh.lookup(s.iterations, t), dur: sh.lookup(s.iterDur, t),
		resp: sh.lookup(s.iterResp, t), dropped: sh.lookup(s.dropped, t),
	}
	sh.mu.Unlock()
	r.iter.promIters = s.prom.iterations.WithLabelValues(scenario)
	r.iter.promDropped = s.prom.dropped.WithLabelValues(scenario)
	r.iter.promResp = s.prom.irt.WithLabelValues(scenario)
	s.recMu.Lock()
	s.recs = append(s.recs, r)
	s.recMu.Unlock()
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// add queues a sample, and moves the batch into the shard when it is full.
func (r *recorder) add(x sample) {
	r.mu.Lock()
	if r.buf == nil {
		r.buf = make([]sample, 0, recorderBatch)
	}
	r.buf = append(r.buf, x)
	if len(r.buf) == cap(r.buf) {
		r.flushLocked()
	}
	r.mu.Unlock()
}

// flushAll moves every recorder's samples into the shards: before a tick
// or a snapshot reads them.
func (s *sink) flushAll() {
	s.recMu.Lock()
	recs := s.recs
	s.recMu.Unlock()
	for _, r := range recs {
		r.mu.Lock()
		r.flushLocked()
		r.mu.Unlock()
	}
}

// flushLocked folds the batch into the shard's aggregates and the current
// second, then into the hal9lab_* metrics; the caller holds r.mu.
func (r *recorder) flushLocked() {
	if len(r.buf) == 0 {
		return
	}
	sh, sec := r.sh, &r.s.sec
	sh.mu.Lock()
	r.s.secMu.Lock()
	for i := range r.buf {
		x := &r.buf[i]
		switch x.kind {
		case sampleHTTP:
			hs, d := x.http, ms(x.d1)
			hs.reqs.add(Counter, 1)
			if hs.timed {
				hs.dur.add(Trend, d)
				hs.wait.add(Trend, ms(x.d2))
			}
			hs.failed.add(Rate, rateValue(x.flag))
			hs.sent.add(Counter, float64(x.n1))
			hs.recv.add(Counter, float64(x.n2))
			sec.reqs++
			if x.flag {
				sec.fails++
			} else {
				recordHist(sec.dur, d) // the time series' p50..p99 follow the bare http_req_duration
			}
		case sampleIteration:
			it, rm := r.iter, ms(x.d2)
			it.iters.add(Counter, 1)
			it.dur.add(Trend, ms(x.d1))
			it.resp.add(Trend, rm)
			sec.iters++
			recordHist(sec.irt, rm)
		case sampleCheck:
			x.check.agg.add(Rate, rateValue(x.flag))
		case sampleCustom:
			m := x.metric
			sh.lookup(m, Tags{Scenario: r.scenario}).add(m.Type, x.v)
			if m.id < len(sec.counters) {
				switch m.Type {
				case Counter:
					sec.counters[m.id] += x.v
				case Rate:
					sec.rates[m.id][0]++
					if x.v != 0 {
						sec.rates[m.id][1]++
					}
				}
			}
		case sampleDropped:
			r.iter.dropped.add(Counter, float64(x.n1))
			sec.dropped += x.n1
		}
	}
	r.s.secMu.Unlock()
	sh.mu.Unlock()
	for i := range r.buf {
		x := &r.buf[i]
		switch x.kind {
		case sampleHTTP:
			hs := x.http
			hs.promReqs.Inc()
			if x.flag {
				hs.promFailed.Inc()
			}
			if hs.timed {
				hs.promDur.Observe(x.d1.Seconds())
			}
		case sampleIteration:
			r.iter.promIters.Inc()
			r.iter.promResp.Observe(x.d2.Seconds())
		case sampleCheck:
			if x.flag {
				x.check.pass.Inc()
			} else {
				x.check.fail.Inc()
			}
		case sampleDropped:
			r.iter.promDropped.Add(float64(x.n1))
		}
		*x = sample{} // drop the pointers
	}
	r.buf = r.buf[:0]
}

func rateValue(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

// httpKey is what tells a recorder's HTTP series apart (its scenario is
// the recorder's): fewer strings to hash than Tags on every request.
type httpKey struct {
	op, layer, name, method string
	status                  int
	failed                  bool
}

// httpSample records one request: http_reqs, http_req_duration,
// http_req_waiting, http_req_failed, data_sent, data_received. A request
// that got no response (status 0) has no duration or waiting time: it
// counts in http_reqs and http_req_failed only, so a dead target cannot
// produce fast-looking latencies. The expected_response tag is set from
// failed.
func (r *recorder) httpSample(k httpKey, dur, wait time.Duration, sent, recv int64) {
	hs := r.http[k]
	if hs == nil {
		hs = r.newHTTPSeries(k)
	}
	r.add(sample{kind: sampleHTTP, flag: k.failed, http: hs, d1: dur, d2: wait, n1: sent, n2: recv})
}

func (r *recorder) newHTTPSeries(k httpKey) *httpSeries {
	s := r.s
	t := Tags{Scenario: r.scenario, Op: k.op, Layer: k.layer, Name: k.name, Method: k.method, Status: statusTag(k.status), ExpectedResponse: "true"}
	if k.failed {
		t.ExpectedResponse = "false"
	}
	// data_sent/received are kept per scenario only: their sub-metrics by
	// route are rarely wanted and this halves the series count.
	ts := Tags{Scenario: t.Scenario}
	r.sh.mu.Lock()
	hs := &httpSeries{
		timed: k.status != 0,
		reqs:  r.sh.lookup(s.httpReqs, t), dur: r.sh.lookup(s.httpDur, t), wait: r.sh.lookup(s.httpWaiting, t),
		failed: r.sh.lookup(s.httpFailed, t), sent: r.sh.lookup(s.dataSent, ts), recv: r.sh.lookup(s.dataRecv, ts),
	}
	r.sh.mu.Unlock()
	hs.promReqs = s.prom.httpReqs.WithLabelValues(t.Scenario, t.Op, t.Status)
	hs.promFailed = s.prom.httpFailed.WithLabelValues(t.Scenario, t.Op)
	hs.promDur = s.prom.httpDur.WithLabelValues(t.Scenario, t.Op)
	r.http[k] = hs
	return hs
}

// iteration records a completed iteration.
func (r *recorder) iteration(dur, resp time.Duration) {
	r.add(sample{kind: sampleIteration, d1: dur, d2: resp})
}

// droppedIteration records an iteration that never started.
func (r *recorder) droppedIteration(n int64) {
	r.add(sample{kind: sampleDropped, n1: n})
}

// check records a named check.
func (r *recorder) check(name string, ok bool) {
	cs := r.checks[name]
	if cs == nil {
		r.sh.mu.Lock()
		cs = &checkSeries{agg: r.sh.lookup(r.s.checks, Tags{Scenario: r.scenario, Check: name})}
		r.sh.mu.Unlock()
		cs.pass = r.s.prom.checks.WithLabelValues(name, "pass")
		cs.fail = r.s.prom.checks.WithLabelValues(name, "fail")
		r.checks[name] = cs
	}
	r.add(sample{kind: sampleCheck, flag: ok, check: cs})
}

// custom records a sample of a custom (or any non-gauge) metric.
func (r *recorder) custom(m *Metric, v float64) {
	if m.Type == Gauge {
		r.s.gauge(m, Tags{}, v)
		return
	}
	r.add(sample{kind: sampleCustom, metric: m, v: v})
}

func (s *sink) gauge(m *Metric, t Tags, v float64) {
	s.gmu.Lock()
	k := stateKey{m.Name, t}
	a := s.gauges[k]
	if a == nil {
		a = newAgg(Gauge)
		s.gauges[k] = a
	}
	a.add(Gauge, v)
	s.gmu.Unlock()
}

// snapshot merges all shards into a state.
func (s *sink) snapshot() *state {
	s.flushAll()
	st := newState()
	for _, sh := range s.shards {
		sh.mu.Lock()
		for k, a := range sh.series {
			st.addSeries(s.metrics[k.metric], k.tags, a, false)
		}
		sh.mu.Unlock()
	}
	s.gmu.Lock()
	for k, a := range s.gauges {
		st.addSeries(s.byName[k.metric], k.tags, a, false)
	}
	s.gmu.Unlock()
	return st
}

// Point is one second of the run's time series, for charts. Latencies are
// milliseconds; P50..P99 are http_req_duration's, IRT* are
// iteration_response_time's.
type Point struct {
	T          int64              `json:"t"`  // seconds since the test started (end of the interval)
	TS         int64              `json:"ts"` // Unix milliseconds at the end of the interval
	Reqs       int64              `json:"reqs"`
	Errors     int64              `json:"errors"`
	Iterations int64              `json:"iterations"`
	Dropped    int64              `json:"dropped"`
	Planned    float64            `json:"planned"` // iterations the open-model scenarios planned in this second
	P50        float64            `json:"p50"`
	P95        float64            `json:"p95"`
	P99        float64            `json:"p99"`
	IRTP50     float64            `json:"irt_p50"`
	IRTP99     float64            `json:"irt_p99"`
	VUs        int                `json:"vus"`
	Custom     map[string]float64 `json:"custom,omitempty"` // counters: sum in the second; rates: share
}

// tick takes the current second's data out of the sink.
func (s *sink) tick(now time.Time, vus int) Point {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	s.flushAll()
	p := Point{T: int64(math.Round(now.Sub(s.started).Seconds())), TS: now.UnixMilli(), VUs: vus}
	counters := make([]float64, len(s.metrics))
	rates := make([][2]int64, len(s.metrics))
	s.secMu.Lock()
	sec := &s.sec
	p.Reqs, p.Errors, p.Iterations, p.Dropped = sec.reqs, sec.fails, sec.iters, sec.dropped
	dur, irt := sec.dur, sec.irt
	p.P50, p.P95, p.P99 = histPct(dur, 50), histPct(dur, 95), histPct(dur, 99)
	p.IRTP50, p.IRTP99 = histPct(irt, 50), histPct(irt, 99)
	copy(counters, sec.counters)
	copy(rates, sec.rates)
	clear(sec.counters)
	clear(sec.rates)
	sec.reqs, sec.fails, sec.iters, sec.dropped = 0, 0, 0, 0
	dur.Reset()
	irt.Reset()
	s.secMu.Unlock()
	for i, m := range s.metrics {
		if !custom(m.Name) {
			continue
		}
		switch m.Type {
		case Counter:
			if p.Custom == nil {
				p.Custom = map[string]float64{}
			}
			p.Custom[m.Name] = counters[i]
		case Rate:
			if p.Custom == nil {
				p.Custom = map[string]float64{}
			}
			if rates[i][0] > 0 {
				p.Custom[m.Name] = float64(rates[i][1]) / float64(rates[i][0])
			} else {
				p.Custom[m.Name] = 0
			}
		}
	}
	return p
}

var builtin = func() map[string]bool {
	b := map[string]bool{}
	for _, m := range NewRegistry().list {
		b[m.Name] = true
	}
	return b
}()

func custom(name string) bool { return !builtin[name] }

func statusTag(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	case 400:
		return "400"
	case 401:
		return "401"
	case 404:
		return "404"
	case 429:
		return "429"
	case 500:
		return "500"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}
