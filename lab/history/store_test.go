package history

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
)

func TestMain(m *testing.M) { infratest.Main(m) }

// eachStore runs fn on an SQLite history and on a PostgreSQL one.
func eachStore(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "sqlite://"+filepath.Join(t.TempDir(), "sub", "history.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, infratest.PostgresURL(t)) })
}

func openStore(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sampleRun(id string, day int, v float64) Run {
	k := Key{Leg: "sqlite", Scenario: "mix", Metric: baseline.ReqDurationP95}
	return Run{ID: id, Time: time.Date(2026, 5, day, 3, 0, 0, 0, time.UTC), Commit: "c" + id, Profile: "nightly", Command: "gate",
		Machine: "Test CPU · 2 cores · go1.26 · linux 6.1", Host: baseline.Machine{CPUModel: "Test CPU", Cores: 2, GoVersion: "go1.26", Kernel: "6.1"},
		Reference: "ref", Source: "reports/runs/" + id + "/summary.json",
		Values: []Value{{Key: k, Kind: Absolute, Repetition: 1, Value: v}, {Key: k, Kind: Absolute, Repetition: 2, Value: v + 1},
			{Key: Key{Leg: "sqlite", Scenario: "mix", Op: "login", Metric: baseline.ErrorRate}, Kind: Absolute, Repetition: 1, Value: 0},
			{Key: k, Kind: Ratio, Repetition: 1, Value: 1.02}}}
}

func TestStoreRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		want := []Run{sampleRun("b", 2, 310), sampleRun("a", 1, 300)}
		for _, r := range want {
			if added, err := s.Add(ctx, r); err != nil || !added {
				t.Fatalf("Add(%s) = %v, %v", r.ID, added, err)
			}
		}
		if added, err := s.Add(ctx, want[0]); err != nil || added {
			t.Fatalf("adding %s again = %v, %v; want false, nil (already there)", want[0].ID, added, err)
		}
		got, err := s.Runs(ctx, "nightly")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" {
			t.Fatalf("runs %+v, want a then b (oldest first)", got)
		}
		w := want[1]
		g := got[0]
		if !g.Time.Equal(w.Time) || g.Commit != w.Commit || g.Machine != w.Machine || g.Host.Kernel != "6.1" || g.Host.Cores != 2 ||
			g.Reference != "ref" || g.Source != w.Source || g.Command != "gate" {
			t.Errorf("run read back as %+v, want %+v", g, w)
		}
		if len(g.Values) != len(w.Values) {
			t.Fatalf("values %+v, want %d", g.Values, len(w.Values))
		}
		ops := 0
		for _, v := range g.Values {
			if v.Op == "login" {
				ops++
			}
		}
		if ops != 1 {
			t.Errorf("the op of a value was not kept: %+v", g.Values)
		}
		if other, err := s.Runs(ctx, "smoke"); err != nil || len(other) != 0 {
			t.Errorf("runs of another profile: %v, %v", other, err)
		}
		// A second Open migrates nothing and sees the same rows.
		s2 := openStore(t, url)
		if all, err := s2.Runs(ctx, ""); err != nil || len(all) != 2 {
			t.Errorf("reopened: %d runs, %v", len(all), err)
		}
	})
}

// TestStoreAddIsAtomic: a run whose values cannot all be written leaves
// nothing behind (two values with one primary key).
func TestStoreAddIsAtomic(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		r := sampleRun("x", 1, 100)
		r.Values = append(r.Values, r.Values[0])
		if _, err := s.Add(ctx, r); err == nil {
			t.Fatal("a run with a duplicate value was added")
		}
		if runs, err := s.Runs(ctx, ""); err != nil || len(runs) != 0 {
			t.Fatalf("after a failed Add: %d runs, %v", len(runs), err)
		}
	})
}

// TestStoreConcurrentOpen: two processes' first Open at once (two CI
// jobs on one PostgreSQL) both succeed, and the schema is made once.
func TestStoreConcurrentOpen(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				s, err := Open(context.Background(), url)
				if err == nil {
					s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		s := openStore(t, url)
		var n int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM history_schema`).Scan(&n); err != nil || n != len(migrations) {
			t.Fatalf("history_schema has %d rows (%v), want %d", n, err, len(migrations))
		}
	})
}

func TestStoreNewerSchema(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "h.db")
	s := openStore(t, url)
	if _, err := s.db.Exec(`INSERT INTO history_schema (version, applied_ms) VALUES (99, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), url); err == nil || !strings.Contains(err.Error(), "use a newer hal9-lab") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestOpenBadURL(t *testing.T) {
	for _, u := range []string{"", "reports/history.db", "mysql://x", "sqlite://", "sqlite://a?b"} {
		if _, err := Open(context.Background(), u); err == nil || !strings.Contains(err.Error(), "sqlite://") {
			t.Errorf("Open(%q) = %v, want an error naming the sqlite:// form", u, err)
		}
	}
	_, err := Open(context.Background(), "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Open of an unreachable PostgreSQL: %v (must fail without printing the password)", err)
	}
}

func TestPlaceholders(t *testing.T) {
	pg := &Store{d: dialect{numbered: true}}
	if got := pg.q(`INSERT INTO t (a, b) VALUES (?, ?)`); got != `INSERT INTO t (a, b) VALUES ($1, $2)` {
		t.Errorf("pg: %s", got)
	}
	lite := &Store{}
	if got := lite.q(`SELECT ?`); got != `SELECT ?` {
		t.Errorf("sqlite: %s", got)
	}
}
