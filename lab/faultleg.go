package lab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
	"github.com/hal9-lab/hal9-lab/lab/workload/hal9"
)

// What a leg adds for faults and the acknowledgement ledger: every leg
// run records the writes its servers acknowledged and checks them in the
// database afterwards; a leg whose scenarios have a `faults:` timeline
// also puts a TCP proxy between the servers and each backend, plays the
// timeline during the load (faults.Timeline) and judges each fault.

// A replica is a fault target: a process or a container (Replica
// restarts it on the same addresses).
var _ faults.ServerHandle = (*serve.Replica)(nil)

// legFaults is a leg run's fault and ledger state.
type legFaults struct {
	l       *leg
	acks    *ledger.Writer
	mem     ledger.Memory // the same entries, for the check
	proxies map[string]*faults.Proxy
	dbURL   string // the servers' database and Redis URLs (through the proxies)
	redis   string
}

// openFaults opens the leg's ledger and, with faults, its proxies.
func openFaults(l *leg) (*legFaults, error) {
	fx := &legFaults{l: l, dbURL: l.db.DatabaseURL, redis: l.db.RedisURL}
	dir := filepath.Join(l.s.opts.OutDir, "ledger")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fx, fmt.Errorf("ledger dir: %w", err)
	}
	var err error
	if fx.acks, err = ledger.Create(filepath.Join(dir, fmt.Sprintf("%s-run%d.jsonl", strings.ReplaceAll(l.key, "+", "-"), l.spec.run))); err != nil {
		return fx, err
	}
	if !hasFaults(l.s.plans) {
		return fx, nil
	}
	fx.proxies = map[string]*faults.Proxy{}
	if strings.HasPrefix(fx.dbURL, "postgres") {
		p, u, err := faults.ThroughProxy("postgres", fx.dbURL)
		if err != nil {
			return fx, err
		}
		fx.proxies[faults.Postgres], fx.dbURL = p, u
	}
	if fx.redis != "" {
		p, u, err := faults.ThroughProxy("redis", fx.redis)
		if err != nil {
			return fx, err
		}
		fx.proxies[faults.Redis], fx.redis = p, u
	}
	return fx, nil
}

// serverURLs are what the servers are given: through the proxies in runs
// with faults.
func (fx *legFaults) serverURLs() (db, redis string) { return fx.dbURL, fx.redis }

// close stops the proxies and closes the ledger.
func (fx *legFaults) close() {
	for _, p := range fx.proxies {
		p.Close()
	}
	if fx.acks != nil {
		_ = fx.acks.Close()
	}
}

// verifyLedger checks every acknowledged write in the leg's database
// (after the servers stopped) and adds the verdict to the leg.
func (fx *legFaults) verifyLedger(ctx context.Context) {
	l := fx.l
	if fx.acks == nil {
		return
	}
	path := fx.acks.Path()
	if err := fx.acks.Close(); err != nil {
		l.s.labError("%s", err)
	}
	fx.acks = nil
	if len(fx.mem.Entries) == 0 {
		return
	}
	var v ledger.Verdict
	_ = l.step(fmt.Sprintf("ledger: %d acknowledged writes checked in the database", len(fx.mem.Entries)), func() error {
		v = ledger.VerifyDB(context.WithoutCancel(ctx), l.db.DatabaseURL, fx.mem.Entries)
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

// scenarioFaults is one scenario's load with the ledger on its workload
// and, with a timeline, the timeline.
type scenarioFaults struct {
	w        load.Workload
	timeline *faults.Timeline // nil without faults
}

func (sf *scenarioFaults) workload() load.Workload {
	if sf.timeline != nil {
		return sf.timeline.Workload()
	}
	return sf.w
}

// transport is the timeline's recording transport (nil: the engine's).
func (sf *scenarioFaults) transport() http.RoundTripper {
	if sf.timeline == nil {
		return nil
	}
	return sf.timeline.Transport()
}

// faulty: faults are played during the load.
func (sf *scenarioFaults) faulty() bool { return sf.timeline != nil }

// beginScenario sets the ledger on the workload and, with faults, starts
// the scenario's timeline on the leg's servers: every replica is a target
// (`replica: N`), replica 0 is watched; the replicas share one proxy per
// backend, so a network fault reaches them all.
func (fx *legFaults) beginScenario(ctx context.Context, sp scenarioPlan, w load.Workload) *scenarioFaults {
	l := fx.l
	if hw, ok := w.(*hal9.Workload); ok && fx.acks != nil {
		hw.SetLedger(ledger.Tee{fx.acks, &fx.mem})
	}
	sf := &scenarioFaults{w: w}
	if len(sp.faults) == 0 {
		return sf
	}
	env := faults.Env{Drain: l.s.opts.Drain, AfterKill: fx.afterKill, BeforeKill: fx.beforeKill,
		Logf: func(f string, a ...any) { l.s.prog.step(f, a...) }}
	for i := range l.srv.Len() {
		r, _ := l.srv.Replica(i)
		env.Servers = append(env.Servers, r)
		env.Proxies = append(env.Proxies, fx.proxies)
		env.AdminURLs = append(env.AdminURLs, r.AdminURL())
	}
	pg, redis := l.spec.backend.Processes()
	if pg != nil { // a nil *infra.Process is no faults.Process
		env.Postgres = pg
	}
	if redis != nil {
		env.Redis = redis
	}
	sf.timeline = faults.StartTimeline(ctx, faults.TimelineOptions{Specs: sp.faults, Workload: w, Watch: env.AdminURLs[0], Env: env})
	return sf
}

// endScenario stops the timeline at the end of the load and judges each
// fault, with the alerts that fired (--prometheus).
func (fx *legFaults) endScenario(ctx context.Context, sf *scenarioFaults, sc *report.Scenario) {
	l := fx.l
	if sf.timeline == nil {
		return
	}
	in := sf.timeline.Stop()
	in.Server = sc.Server.Series
	if l.s.side.prom != nil {
		in.Alerts = l.s.alertSpans(ctx, in.Records)
	}
	in.AlertFor = alertFor(l.s.opts.Root)
	res := faults.Analyze(in)
	l.out.Faults = append(l.out.Faults, res...)
	sc.Warnings = append(sc.Warnings, fmt.Sprintf("%d faults were injected: the client/server cross-check is skipped and server-side totals cover the last server process only", len(in.Records)))
	for _, f := range res {
		v := "pass"
		if !f.Passed() {
			v = "FAIL"
		}
		l.s.prog.step("fault %s: %s (tried %.0f, failed %.0f, recover %s)", f.Name, v, f.Tried, f.Failed, faults.MillisText(f.RecoverMS))
	}
}

// afterKill measures the write-behind loss window right after a SIGKILL:
// how old the newest neuron state in the database was when the server
// died. States queued behind the cache (--cache-strategy behind) die with
// the process; signals never do (they are written before the answer).
func (fx *legFaults) afterKill(ctx context.Context, _ faults.Spec, killed time.Time) []string {
	d, err := ledger.OpenDB(ctx, fx.l.db.DatabaseURL)
	if err != nil {
		return []string{"write-behind loss window not measured: " + err.Error()}
	}
	defer d.Close()
	at, err := d.NeuronsUpdatedAt(ctx)
	if err != nil || at.IsZero() {
		return []string{fmt.Sprintf("write-behind loss window not measured: no neuron state in the database (%v)", err)}
	}
	strategy := fx.l.s.opts.Profile.Env["HAL9_CACHE_STRATEGY"]
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
func (fx *legFaults) beforeKill(ctx context.Context, spec faults.Spec) []string {
	r, err := fx.l.srv.Replica(spec.Replica)
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
