package lab

import (
	"context"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	pprofile "github.com/google/pprof/profile"

	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/profiles"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// finish writes the profiles, checks Prometheus queries, fills the summary
// and writes every report file into OutDir.
func (s *session) finish(ctx context.Context) (*report.RunSummary, error) {
	sum := s.summary
	sum.EndedAt = time.Now().UTC()
	if ctx.Err() != nil {
		sum.Interrupted = true
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if s.side.prom != nil {
		s.prog.setLeg("lab")
		s.prog.step("evaluating dashboard and rule queries over the run in Prometheus")
		if err := s.checkQueries(fctx, sum.StartedAt, sum.EndedAt); err != nil {
			s.labError("--prometheus: %v", err)
		}
	}
	if legs := s.side.recv.Legs(); len(legs) > 0 {
		dir := filepath.Join(s.opts.OutDir, "profiles")
		if _, err := s.side.recv.WriteFiles(dir); err != nil {
			s.labError("write profiles: %v", err)
		}
		// In the order the legs ran.
		sort.SliceStable(legs, func(i, j int) bool { return legOrder(sum, legs[i]) < legOrder(sum, legs[j]) })
		for _, l := range legs {
			ls := s.side.recv.Summarize(l, s.baselineProfile, 8)
			flames, notes := s.side.recv.WriteFlames(dir, l, s.flameComparison(l, legs))
			ls.Flames, ls.Notes = flames, append(ls.Notes, notes...)
			sum.Profiles = append(sum.Profiles, ls)
		}
	}
	s.mu.Lock()
	sum.LabErrors = append(sum.LabErrors, s.labErrors...)
	s.labErrors = nil
	s.mu.Unlock()
	if _, err := report.WriteAll(s.opts.OutDir, sum); err != nil {
		return sum, err
	}
	return sum, nil
}

func legOrder(sum *report.RunSummary, key string) int {
	for i, l := range sum.Legs {
		if legKey(l.Name, l.Role) == key {
			return i
		}
	}
	return len(sum.Legs)
}

// BaselineProfileDir is where a profile's baseline pprof files live.
func BaselineProfileDir(baselineDir, profileName string) string {
	return filepath.Join(baselineDir, "profiles", profileName)
}

// flameComparison is what leg's differential flame graphs compare it with:
// the baseline's profiles when the run has a baseline that kept them; in a
// gate against a reference build, the reference's leg of the same backend;
// else the run's first leg (legs are in the order they ran), so a run over
// several backends shows where their CPU differs. nil: nothing to compare.
func (s *session) flameComparison(leg string, legs []string) *profiles.Comparison {
	if s.baselineProfile(leg, "cpu") != nil {
		return &profiles.Comparison{Label: "the baseline", Profile: func(typ string) *pprofile.Profile { return s.baselineProfile(leg, typ) }}
	}
	if ref := leg + "-reference"; slices.Contains(legs, ref) {
		return &profiles.Comparison{Label: "the reference build", Profile: func(typ string) *pprofile.Profile { return s.side.recv.Profile(ref, typ) }}
	}
	if first := legs[0]; first != leg && !strings.HasSuffix(leg, "-reference") {
		return &profiles.Comparison{Label: "leg " + first, Profile: func(typ string) *pprofile.Profile { return s.side.recv.Profile(first, typ) }}
	}
	return nil
}

func (s *session) baselineProfile(leg, typ string) *pprofile.Profile {
	if s.opts.BaselineDir == "" {
		return nil
	}
	p, err := profiles.ReadFile(filepath.Join(BaselineProfileDir(s.opts.BaselineDir, s.opts.Profile.Name), profiles.FileName(leg, typ)))
	if err != nil {
		return nil
	}
	return p
}

// checkQueries evaluates every dashboard and rule expression over the run.
func (s *session) checkQueries(ctx context.Context, start, end time.Time) error {
	// One more scrape of everything before evaluating.
	_ = s.side.prom.WaitForScrapes(ctx, []string{"hal9lab"}, 2)
	exprs, err := prom.ProjectExprs(s.opts.Root)
	if err != nil {
		return err
	}
	res := s.side.prom.CheckExpressions(ctx, exprs, start, end, prom.CheckOptions{Vars: map[string]string{"__rate_interval": "4s"}, Step: time.Second})
	s.summary.PrometheusChecked = len(res)
	for _, r := range res {
		switch {
		case r.Err != nil:
			s.summary.NoData = append(s.summary.NoData, report.NoData{Source: r.Source, Name: r.Name, Expr: r.Evaluated, Reason: "error: " + r.Err.Error()})
		case r.NoData():
			s.summary.NoData = append(s.summary.NoData, report.NoData{Source: r.Source, Name: r.Name, Expr: r.Evaluated, Reason: noDataReason(r.Evaluated, s.summary)})
		}
	}
	return nil
}

// noDataReason guesses the usual innocent reasons for an empty query.
func noDataReason(expr string, sum *report.RunSummary) string {
	switch {
	case strings.Contains(expr, "hal9_db_pool") && !ranBackend(sum, profile.Postgres, profile.PostgresRedis):
		return "no PostgreSQL leg ran (the pool metrics exist only with --database-url postgres://)"
	case strings.Contains(expr, "hal9_redis") && !ranBackend(sum, profile.PostgresRedis):
		return "no Redis leg ran"
	case strings.Contains(expr, "capacity"):
		return "the servers ran without --capacity-rps (a profile's env: sets HAL9_CAPACITY_RPS): with no rated capacity the capacity rules and panel are silent by design"
	case strings.Contains(expr, "ALERTS"):
		return "no alert fired during the run"
	}
	return "no series over the run's range: the metric was never exported, or the event never happened in this run"
}

func ranBackend(sum *report.RunSummary, names ...string) bool {
	for _, l := range sum.Legs {
		if slices.Contains(names, l.Name) && len(l.Scenarios) > 0 {
			return true
		}
	}
	return false
}
