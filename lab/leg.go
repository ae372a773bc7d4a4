package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/lab/backend"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

// legSpec is one run of one leg.
type legSpec struct {
	backend *backend.Backend
	run     int
	runs    int    // of how many, for progress
	role    string // gate --against: "candidate" or "reference"; "" otherwise
	bin     string
	env     map[string]string // on top of the session's ServerEnv
	// rateLimitCheck runs the profile's rate-limit check after the scenarios.
	rateLimitCheck bool
}

// legKey names a leg's profiles and logs: "sqlite", "sqlite-reference".
func legKey(backend, role string) string {
	if role == "" || role == "candidate" {
		return backend
	}
	return backend + "-" + role
}

// leg is one run of one leg while it runs: what its steps share. Its
// fault and capacity phases keep their own state (faultleg.go,
// capacityleg.go).
type leg struct {
	s       *session
	spec    legSpec
	key     string     // legKey: names its profiles and logs
	out     report.Leg // what the report gets
	dataDir string     // the server's --data-dir (and the SQLite file)
	db      *backend.Database
	// The database and Redis URLs the servers get: db's, or through the
	// faults' proxies.
	serverDB, serverRedis string
	srv                   *serve.ReplicaSet // the servers running now (one, or replicas behind HAProxy); nil between starts
	limit                 float64           // srv's --rate-limit
	secret                string            // the leg's --jwt-secret, shared by its replicas and restarts
	ctr                   *serve.Container  // --server container: how its servers run (nil: processes)
	config                map[string]any    // srv's effective configuration (hal9 config)
	checkOnly             bool              // the running server is the rate-limit check's
}

// runLeg runs one leg, each step timed into its report: a fresh
// database, the server, warm-up, every scenario with /metrics scraped
// around it, the knee search, the rate-limit check, SIGTERM, the ledger
// check. It always returns the leg with what was measured; errors are in
// its Error. A cancelled ctx stops it early (Ctrl-C).
func (s *session) runLeg(ctx context.Context, spec legSpec) report.Leg {
	b := spec.backend
	l := &leg{s: s, spec: spec, key: legKey(b.Name, spec.role), limit: -1, secret: serve.NewSecret(),
		out: report.Leg{Name: b.Name, Run: spec.run, Role: spec.role, Infra: b.Infra(), Redis: b.Name == profile.PostgresRedis}}
	s.prog.setLeg(l.label())
	var err error
	if l.dataDir, err = os.MkdirTemp("", "hal9lab-"+strings.ReplaceAll(b.Name, "+", "-")+"-"); err != nil {
		return l.fail(fmt.Errorf("create data dir: %w", err))
	}
	defer os.RemoveAll(l.dataDir)
	if s.opts.Server == ServerModeContainer {
		if err := l.serverImage(ctx); err != nil {
			return l.fail(err)
		}
	}
	defer l.dropDatabase(ctx)
	if err := l.step("fresh database", func() error { return l.freshDatabase(ctx) }); err != nil {
		return l.fail(err)
	}
	l.out.Database = redact.URL(l.db.DatabaseURL)
	fx, err := openFaults(l) // the acknowledgement ledger; with a timeline, the proxies
	defer fx.close()
	if err != nil {
		return l.fail(err)
	}
	l.serverDB, l.serverRedis = fx.serverURLs()

	defer l.stopServer()
	fx.portTaken(ctx) // before the first server starts
	if err := l.runScenarios(ctx, fx); err != nil {
		return l.fail(err)
	}
	var knee *capacityLeg
	if s.capacity != nil && ctx.Err() == nil {
		knee = l.capacitySearch(ctx)
	}
	if spec.rateLimitCheck && s.opts.Profile.RateLimit != nil && ctx.Err() == nil {
		l.rateLimitCheck(ctx, *s.opts.Profile.RateLimit)
	}
	// Server totals come from the scenario diffs; peak RSS from /proc.
	if l.srv != nil {
		if rss, _, ok := l.srv.Stats(); ok && rss > l.out.Server.PeakRSSBytes {
			l.out.Server.PeakRSSBytes = rss
		}
	}
	readings.FinishServer(&l.out.Server, s.summary.Seed)
	l.stopServer()
	fx.verifyLedger(ctx) // in the database, after the server stopped
	knee.serviceDemand() // from the CPU profile, complete once the servers exited
	return l.out
}

// label names the leg in progress lines: "sqlite reference 2/5".
func (l *leg) label() string {
	label := l.spec.backend.Name
	if l.spec.role != "" {
		label += " " + l.spec.role
	}
	if l.spec.runs > 1 {
		label += fmt.Sprintf(" %d/%d", l.spec.run, l.spec.runs)
	}
	return label
}

// step runs one named step of the leg: a progress line, and its duration
// and error in the report.
func (l *leg) step(name string, fn func() error) error {
	l.s.prog.step("%s", name)
	t := time.Now()
	err := fn()
	st := report.Step{Name: name, DurationMS: float64(time.Since(t).Microseconds()) / 1000}
	if err != nil {
		st.Error = err.Error()
		l.s.prog.step("%s: FAILED: %v", name, err)
	}
	l.out.Steps = append(l.out.Steps, st)
	return err
}

// fail records err as the leg's error (the first one wins) and returns
// the leg as measured so far.
func (l *leg) fail(err error) report.Leg {
	if l.out.Error == "" {
		l.out.Error = err.Error()
	}
	return l.out
}

// freshDatabase provisions the run's own database (backend.FreshDatabase).
func (l *leg) freshDatabase(ctx context.Context) error {
	var err error
	l.db, err = l.spec.backend.FreshDatabase(ctx, l.dataDir)
	return err
}

// dropDatabase drops what freshDatabase created; a failure is a lab error.
func (l *leg) dropDatabase(ctx context.Context) {
	if l.db == nil {
		return
	}
	if err := l.db.Close(context.WithoutCancel(ctx)); err != nil {
		l.s.labError("%s run %d: cleaning up its database: %v", l.spec.backend.Name, l.spec.run, err)
	}
}

// logPath is where one server start of the leg logs, named by what.
func (l *leg) logPath(what string) string {
	return filepath.Join(l.s.opts.OutDir, "logs", fmt.Sprintf("%s-run%d-%s.log", strings.ReplaceAll(l.key, "+", "-"), l.spec.run, what))
}

// randomSuffix keeps the names of load runs (the workload's users) apart.
func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
