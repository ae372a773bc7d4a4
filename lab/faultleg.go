package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
	"github.com/hal9-lab/hal9-lab/lab/workload/hal9"
)

// What a leg adds for faults and the acknowledgement ledger: every leg
// run records the writes its server acknowledged and checks them in the
// database afterwards; a leg whose scenarios have a `faults:` timeline
// also puts a TCP proxy between the server and each backend, plays the
// timeline during the load and judges each fault.

// legFaults is a leg run's fault and ledger state.
type legFaults struct {
	acks    *ledger.Writer
	mem     ledger.Memory // the same entries, for the check
	proxies map[string]*faults.Proxy
	dbURL   string // the server's database and Redis URLs (through the proxies)
	redis   string
}

// infraOptions: the session's --infra, but local processes when a fault
// kills, stops or pauses PostgreSQL or Redis; the profile's durability
// (production's unless it says postgres: {durable: false}).
func (s *Session) infraOptions(pg, redis bool) infra.Options {
	mode := infra.Mode(s.opts.Infra)
	if needsProcesses(s.plans) && (mode == infra.ModeAuto || mode == "auto") {
		mode = infra.ModeProcess
	}
	return infra.Options{Postgres: pg, Redis: redis, Mode: mode, Logger: s.log, Durable: s.opts.Profile.Postgres.IsDurable()}
}

// prepareFaults opens the leg's ledger and, with faults, its proxies.
func (l *leg) prepareFaults() error {
	fx := &legFaults{dbURL: l.backing.DatabaseURL, redis: l.backing.RedisURL}
	l.fx = fx
	dir := filepath.Join(l.s.opts.OutDir, "ledger")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ledger dir: %w", err)
	}
	var err error
	if fx.acks, err = ledger.Create(filepath.Join(dir, fmt.Sprintf("%s-run%d.jsonl", strings.ReplaceAll(l.key, "+", "-"), l.spec.Run))); err != nil {
		return err
	}
	if !hasFaults(l.s.plans) {
		return nil
	}
	fx.proxies = map[string]*faults.Proxy{}
	if strings.HasPrefix(fx.dbURL, "postgres") {
		p, u, err := faults.ThroughProxy("postgres", fx.dbURL)
		if err != nil {
			return err
		}
		fx.proxies[faults.Postgres], fx.dbURL = p, u
	}
	if fx.redis != "" {
		p, u, err := faults.ThroughProxy("redis", fx.redis)
		if err != nil {
			return err
		}
		fx.proxies[faults.Redis], fx.redis = p, u
	}
	return nil
}

// closeFaults stops the proxies and closes the ledger.
func (l *leg) closeFaults() {
	if l.fx == nil {
		return
	}
	for _, p := range l.fx.proxies {
		p.Close()
	}
	if l.fx.acks != nil {
		_ = l.fx.acks.Close()
	}
}

// serverURLs are what the server is given: through the proxies in runs
// with faults.
func (l *leg) serverURLs() (db, redis string) {
	if l.fx == nil {
		return l.backing.DatabaseURL, l.backing.RedisURL
	}
	return l.fx.dbURL, l.fx.redis
}

// verifyLedger checks every acknowledged write in the leg's database
// (after the server stopped) and adds the verdict to the leg.
func (l *leg) verifyLedger(ctx context.Context) {
	if l.fx == nil || l.fx.acks == nil {
		return
	}
	path := l.fx.acks.Path()
	if err := l.fx.acks.Close(); err != nil {
		l.s.LabError("%s", err)
	}
	l.fx.acks = nil
	if len(l.fx.mem.Entries) == 0 {
		return
	}
	var v ledger.Verdict
	_ = l.step(fmt.Sprintf("ledger: %d acknowledged writes checked in the database", len(l.fx.mem.Entries)), func() error {
		v = ledger.VerifyDB(context.WithoutCancel(ctx), l.backing.DatabaseURL, l.fx.mem.Entries)
		if !v.OK() {
			return errors.New(v.Line())
		}
		return nil
	})
	v.File = path
	l.out.Ledger = &v
	l.s.prog.step("ledger: %s", v.Line())
	for i := range l.out.Faults {
		if f := &l.out.Faults[i]; f.Target == faults.Server && f.Kind == "sigkill" {
			f.Checks = append(f.Checks, report.FaultCheck{Name: "no acknowledged write lost (ledger)", OK: v.OK(), Detail: v.Line()})
		}
	}
}

// scenarioFaults is one scenario's fault run.
type scenarioFaults struct {
	workload  load.Workload
	transport *faults.Recorder
	specs     []faults.Spec
	cancel    context.CancelFunc
	monitor   *faults.Monitor
	records   chan []faults.Record
	started   chan time.Time
}

// beginScenario sets the ledger on the workload and, with faults, wraps
// it so the timeline starts with the load, records every request and
// starts watching the server.
func (l *leg) beginScenario(ctx context.Context, sp scenarioPlan, w load.Workload) *scenarioFaults {
	fr := &scenarioFaults{workload: w, specs: sp.faults}
	if hw, ok := w.(*hal9.Workload); ok && l.fx != nil && l.fx.acks != nil {
		hw.SetLedger(ledger.Tee{l.fx.acks, &l.fx.mem})
	}
	if len(sp.faults) == 0 {
		return fr
	}
	fr.transport = &faults.Recorder{Next: load.NewTransport(2000)}
	fr.started = make(chan time.Time, 1)
	fr.records = make(chan []faults.Record, 1)
	fr.workload = &onStart{Workload: w, started: fr.started}
	mctx, cancel := context.WithCancel(ctx)
	fr.cancel = cancel
	// Replica 0 is watched; every replica is a target (`replica: N`). The
	// replicas share one proxy per backend, so a network fault reaches all.
	first, _ := l.srv.Replica(0)
	fr.monitor = faults.StartMonitor(mctx, first.AdminURL(), 500*time.Millisecond)
	env := faults.Env{
		Drain:      l.s.opts.Drain,
		AfterKill:  l.afterKill,
		BeforeKill: l.beforeKill,
		Logf:       func(f string, a ...any) { l.s.prog.step(f, a...) },
	}
	for i := range l.srv.Len() {
		r, _ := l.srv.Replica(i)
		env.Servers = append(env.Servers, r)
		env.Proxies = append(env.Proxies, l.fx.proxies)
		env.AdminURLs = append(env.AdminURLs, r.AdminURL())
	}
	if b := l.spec.Backend; b.env != nil {
		for _, p := range b.env.Processes {
			switch {
			case p.URL() == b.env.PostgresURL:
				env.Postgres = p
			case p.URL() == b.env.RedisURL:
				env.Redis = p
			}
		}
	}
	go func() {
		select {
		case t0 := <-fr.started:
			fr.records <- faults.Run(mctx, t0, sp.faults, env)
		case <-mctx.Done():
			fr.records <- nil
		}
	}()
	return fr
}

// endScenario waits for the timeline to be healed and judges each fault.
func (l *leg) endScenario(ctx context.Context, fr *scenarioFaults, sc *report.Scenario) {
	if fr == nil || len(fr.specs) == 0 {
		return
	}
	loadEnd := time.Now()
	// The timeline ends inside the load (Validate), so this only skips
	// faults of a load that stopped early and heals those still held.
	fr.cancel()
	recs := <-fr.records
	health := fr.monitor.Samples()
	if tr, ok := fr.transport.Next.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
	var alerts []faults.AlertSpan
	if l.s.prom != nil {
		alerts = l.alertSpans(ctx, recs)
	}
	res := faults.Analyze(faults.Input{Records: recs, Requests: fr.transport.Requests(), Health: health,
		Server: sc.Server.Series, Alerts: alerts, AlertFor: l.s.alertFor(), End: loadEnd})
	l.out.Faults = append(l.out.Faults, res...)
	sc.Warnings = append(sc.Warnings, fmt.Sprintf("%d faults were injected: the client/server cross-check is skipped and server-side totals cover the last server process only", len(recs)))
	for _, f := range res {
		v := "pass"
		if !f.Passed() {
			v = "FAIL"
		}
		l.s.prog.step("fault %s: %s (tried %.0f, failed %.0f, recover %s)", f.Name, v, f.Tried, f.Failed, msString(f.RecoverMS))
	}
}

func msString(p *float64) string {
	if p == nil {
		return "never"
	}
	return (time.Duration(*p) * time.Millisecond).String()
}

// alertSpans reads which alerts fired from the start of the first fault
// (minus a minute) to now, waiting until 30 s after the last heal so the
// last fault's alert has had its time.
func (l *leg) alertSpans(ctx context.Context, recs []faults.Record) []faults.AlertSpan {
	var from, last time.Time
	for _, r := range recs {
		if r.Injected.IsZero() {
			continue
		}
		if from.IsZero() || r.Injected.Before(from) {
			from = r.Injected
		}
		if r.Healed.After(last) {
			last = r.Healed
		}
	}
	if from.IsZero() {
		return []faults.AlertSpan{}
	}
	if d := time.Until(last.Add(30 * time.Second)); d > 0 {
		_ = load.Sleep(ctx, d)
	}
	series, err := l.s.prom.EvalRange(context.WithoutCancel(ctx), `ALERTS{alertstate="firing"}`, from.Add(-time.Minute), time.Now(), time.Second)
	if err != nil {
		l.s.LabError("--prometheus: read the alerts that fired: %v", err)
		return nil
	}
	spans := []faults.AlertSpan{}
	for _, s := range series {
		var cur *faults.AlertSpan
		for _, p := range s.Points {
			if cur != nil && p.T.Sub(cur.To) <= 3*time.Second {
				cur.To = p.T
				continue
			}
			if cur != nil {
				spans = append(spans, *cur)
			}
			cur = &faults.AlertSpan{Name: s.Labels["alertname"], From: p.T, To: p.T}
		}
		if cur != nil {
			spans = append(spans, *cur)
		}
	}
	return spans
}

// alertFor reads each alert's for: from alerts/*.rules.yml.
func (s *Session) alertFor() map[string]time.Duration {
	out := map[string]time.Duration{}
	files, _ := filepath.Glob(filepath.Join(s.opts.Root, "alerts", "*.rules.yml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var doc struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
					For   string `yaml:"for"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if yaml.Unmarshal(b, &doc) != nil {
			continue
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					d, _ := time.ParseDuration(r.For)
					out[r.Alert] = d
				}
			}
		}
	}
	return out
}

// afterKill measures the write-behind loss window right after a SIGKILL:
// how old the newest neuron state in the database was when the server
// died. States queued behind the cache (--cache-strategy behind) die with
// the process; signals never do (they are written before the answer).
func (l *leg) afterKill(ctx context.Context, _ faults.Spec, killed time.Time) []string {
	d, err := ledger.OpenDB(ctx, l.backing.DatabaseURL)
	if err != nil {
		return []string{"write-behind loss window not measured: " + err.Error()}
	}
	defer d.Close()
	at, err := d.NeuronsUpdatedAt(ctx)
	if err != nil || at.IsZero() {
		return []string{fmt.Sprintf("write-behind loss window not measured: no neuron state in the database (%v)", err)}
	}
	strategy := l.s.opts.Profile.Env["HAL9_CACHE_STRATEGY"]
	if strategy == "" {
		strategy = os.Getenv("HAL9_CACHE_STRATEGY")
	}
	if strategy == "" {
		strategy = "aside"
	}
	return []string{fmt.Sprintf("write-behind loss window (neuron states, --cache-strategy %s): the newest neuron state in the database was %s old at the SIGKILL (states are saved on a change and every minute: what the crash could lose is younger than that)",
		strategy, killed.Sub(at).Round(10*time.Millisecond))}
}

// beforeKill reads, just before a SIGKILL, how many records wait in the
// write-behind queue: they die with the process.
func (l *leg) beforeKill(ctx context.Context, spec faults.Spec) []string {
	r, err := l.srv.Replica(spec.Replica)
	if err != nil {
		return nil
	}
	sc, err := prom.Fetch(ctx, &http.Client{Timeout: 2 * time.Second}, r.AdminURL()+"/metrics")
	if err != nil || !sc.Has("hal9_cache_writebehind_queue_length") {
		return nil
	}
	return []string{fmt.Sprintf("write-behind loss at the SIGKILL: %.0f neuron-state records were queued behind the cache (hal9_cache_writebehind_queue_length) and died with the process; the queue is flushed every second or 100 records",
		sc.Sum("hal9_cache_writebehind_queue_length", nil))}
}

// onStart tells when the workload's setup is done: the executors start.
type onStart struct {
	load.Workload
	started chan<- time.Time
}

func (o *onStart) Setup(ctx context.Context, env *load.Env) error {
	if err := o.Workload.Setup(ctx, env); err != nil {
		return err
	}
	o.started <- time.Now()
	return nil
}

// A replica is a fault target: a process or a container (Replica
// restarts it on the same addresses).
var _ faults.ServerHandle = (*serve.Replica)(nil)

// portTaken plays the timeline's `server port-taken` faults before the
// first server starts: with its API port held by another listener, the
// server must exit at once with an error naming the address, and leave
// the leg's fresh database untouched (it binds before it opens the store).
func (l *leg) portTaken(ctx context.Context) {
	for _, sp := range l.s.plans {
		for _, f := range sp.faults {
			if f.Target == faults.Server && f.Kind == "port-taken" {
				l.out.Faults = append(l.out.Faults, l.playPortTaken(ctx, f))
			}
		}
	}
}

func (l *leg) playPortTaken(ctx context.Context, spec faults.Spec) report.FaultResult {
	res := report.FaultResult{Name: spec.Name(), Target: spec.Target, Kind: spec.Kind, CacheHitBefore: -1, CacheHitDuring: -1}
	ln, err := listenFree()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer ln.Close()
	addr := ln.Addr().String()
	db, redis := l.serverURLs()
	opts := serve.Options{Bin: l.spec.Bin, DatabaseURL: db, RedisURL: redis, DataDir: l.dataDir, Addr: addr, Shutdown: l.s.opts.Drain,
		LogPath: filepath.Join(l.s.opts.OutDir, "logs", fmt.Sprintf("%s-run%d-port-taken.log", strings.ReplaceAll(l.key, "+", "-"), l.spec.Run))}
	start := time.Now()
	res.Start = start.UnixMilli()
	srv, err := serve.Start(ctx, opts)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	code, exited := srv.WaitExit(15 * time.Second)
	if !exited {
		srv.Kill()
		<-srv.Done()
	}
	took := time.Since(start)
	res.Healed = time.Now().UnixMilli()
	logText, _ := os.ReadFile(opts.LogPath)
	res.Checks = append(res.Checks,
		report.FaultCheck{Name: "exited at once with an error", OK: code != 0 && code != -1 && took < 10*time.Second, Detail: fmt.Sprintf("exit code %d after %s", code, took.Round(time.Millisecond))},
		report.FaultCheck{Name: "the message names the taken address", OK: strings.Contains(string(logText), addr), Detail: strings.TrimSpace(lastLine(string(logText)))})
	untouched, detail := l.databaseUntouched(ctx)
	res.Checks = append(res.Checks, report.FaultCheck{Name: "the database was not touched (bind before the store)", OK: untouched, Detail: detail})
	l.s.prog.step("fault %s: exit %d in %s", spec.Name(), code, took.Round(time.Millisecond))
	return res
}

// databaseUntouched: the leg's fresh database has no schema yet.
func (l *leg) databaseUntouched(ctx context.Context) (bool, string) {
	u := l.backing.DatabaseURL
	if strings.HasPrefix(u, "sqlite://") {
		path := strings.TrimPrefix(u, "sqlite://")
		if _, err := os.Stat(path); err == nil {
			return false, path + " exists: the store was opened before the bind"
		}
		return true, path + " was not created"
	}
	d, err := ledger.OpenDB(ctx, u)
	if err != nil {
		return false, err.Error()
	}
	defer d.Close()
	has, err := d.HasSchema(ctx)
	if err != nil {
		return false, err.Error()
	}
	if has {
		return false, "schema_migrations exists: the store was migrated before the bind"
	}
	return true, "no schema_migrations table: nothing was migrated"
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// roundTripper is the recording transport (nil: the engine's own).
func (fr *scenarioFaults) roundTripper() http.RoundTripper {
	if fr.transport == nil {
		return nil
	}
	return fr.transport
}

func listenFree() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("take a port for the port-taken fault: %w", err)
	}
	return ln, nil
}
