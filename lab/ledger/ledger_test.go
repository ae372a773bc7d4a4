package ledger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/postgres"
	"github.com/hal9-lab/hal9-lab/server/store/sqlite"
)

func TestMain(m *testing.M) { infratest.Main(m) }

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := []Entry{
		{Kind: KindUser, ID: "u1", Username: "alice"},
		{Kind: KindSignal, ID: "s1", User: "alice", Status: 200, At: &at},
		{Kind: KindSignal, ID: "s2", User: "alice", Status: 202, At: &at},
		{Kind: KindAPIKey, ID: "k1", User: "alice"},
	}
	for _, e := range in {
		w.Record(e)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	// The line shapes, exactly.
	for _, want := range []string{
		`{"kind":"user","id":"u1","username":"alice"}`,
		`{"kind":"signal","id":"s1","user":"alice","status":200,"at":"2026-01-02T03:04:05Z"}`,
		`{"kind":"api_key","id":"k1","user":"alice"}`,
	} {
		if !strings.Contains(string(raw), want+"\n") {
			t.Errorf("ledger lacks line %s:\n%s", want, raw)
		}
	}
	out, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) || out[1].ID != "s1" || out[2].Status != 202 || !out[1].At.Equal(at) {
		t.Errorf("read back %+v", out)
	}
}

func TestReadErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"kind":"signal","id":"s1"}`, "line 1: signal entry \"s1\" has no user"},
		{"{\"kind\":\"user\",\"id\":\"u\",\"username\":\"a\"}\n{\"kind\":\"order\",\"id\":\"x\"}", "line 2: unknown kind \"order\""},
		{`{"kind":"user","id":"u","username":"a","extra":1}`, "line 1: json: unknown field \"extra\""},
		{`not json`, "line 1:"},
	} {
		_, err := Read(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
}

// fakeLookup answers from a map id → owners.
type fakeLookup struct {
	rows map[string][]string
	err  error
}

func (f fakeLookup) Find(_ context.Context, _ string, es []Entry) (map[string][]string, error) {
	out := map[string][]string{}
	for _, e := range es {
		if o, ok := f.rows[e.ID]; ok {
			out[e.ID] = o
		}
	}
	return out, f.err
}
func (fakeLookup) Describe() (string, string) { return "fake", "nothing" }

func TestVerifyCounts(t *testing.T) {
	es := []Entry{
		{Kind: KindSignal, ID: "found", User: "a"},
		{Kind: KindSignal, ID: "lost", User: "a"},
		{Kind: KindSignal, ID: "twice", User: "a"},        // two rows
		{Kind: KindSignal, ID: "found", User: "a"},        // acknowledged twice
		{Kind: KindSignal, ID: "someone-else", User: "a"}, // a row owned by b is not a's
		{Kind: KindUser, ID: "u", Username: "a"},
	}
	v := Verify(context.Background(), es, fakeLookup{rows: map[string][]string{
		"found": {"a"}, "twice": {"a", "a"}, "someone-else": {"b"}, "u": {"a"}}})
	if v.Acknowledged != 6 || v.Found != 4 || v.Lost != 2 || v.Duplicated != 2 || v.OK() {
		t.Errorf("verdict %+v", v)
	}
	if c := v.ByKind[KindSignal]; c.Acknowledged != 5 || c.Lost != 2 {
		t.Errorf("signals %+v", c)
	}
	if len(v.LostSample) != 2 || !strings.Contains(strings.Join(v.LostSample, ";"), `owned by "b"`) {
		t.Errorf("lost sample %v", v.LostSample)
	}
	if !strings.Contains(v.Line(), "2 LOST") {
		t.Errorf("line %q", v.Line())
	}
	ok := Verify(context.Background(), es[:1], fakeLookup{rows: map[string][]string{"found": {"a"}}})
	if !ok.OK() || ok.Lost != 0 || !strings.HasPrefix(ok.Line(), "nothing lost") {
		t.Errorf("clean verdict %+v %q", ok, ok.Line())
	}
	failed := Verify(context.Background(), es[:1], fakeLookup{err: errors.New("down")})
	if failed.OK() || !strings.Contains(failed.Error, "down") {
		t.Errorf("a lookup error must fail the verdict: %+v", failed)
	}
}

// seed writes a user, a key and two signals through the server's own
// store (the schema's source of truth) and returns the ledger of them
// plus one entry that was never written.
func seed(t *testing.T, st store.Store) []Entry {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	if err := st.CreateUser(ctx, store.User{ID: "u-1", Username: "alice", Email: "a@x", PasswordHash: "h", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAPIKey(ctx, store.APIKey{ID: "k-1", UserID: "u-1", Name: "k", Prefix: "p", Hash: "h1", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"0192-a", "0192-b"} {
		sig := store.Signal{ID: id, UserID: "u-1", Layer: "L2", NeuronID: "n", Content: "c", Status: store.SignalProcessed, CreatedAt: now, CompletedAt: now}
		if err := st.SaveSignal(ctx, sig, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.UpsertNeurons(ctx, []store.Neuron{{ID: "n", Layer: "L2", State: "active", UpdatedAt: now}}); err != nil {
		t.Fatal(err)
	}
	return []Entry{
		{Kind: KindUser, ID: "u-1", Username: "alice"},
		{Kind: KindAPIKey, ID: "k-1", User: "alice"},
		{Kind: KindSignal, ID: "0192-a", User: "alice", Status: 200},
		{Kind: KindSignal, ID: "0192-b", User: "mallory", Status: 202}, // alice's row, not mallory's
		{Kind: KindSignal, ID: "0192-never", User: "alice", Status: 200},
	}
}

func checkDBVerdict(t *testing.T, url string, es []Entry) {
	t.Helper()
	ctx := context.Background()
	v := VerifyDB(ctx, url, es)
	if v.Error != "" || v.Source != "database" || v.Checks != "durability" {
		t.Fatalf("verdict %+v", v)
	}
	if v.Acknowledged != 5 || v.Found != 3 || v.Lost != 2 || v.Duplicated != 0 {
		t.Errorf("verdict %+v, want 5 acknowledged, 3 found, 2 lost", v)
	}
	d, err := OpenDB(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if at, err := d.NeuronsUpdatedAt(ctx); err != nil || time.Since(at) > time.Minute {
		t.Errorf("neurons updated at %v, %v", at, err)
	}
	if ok, err := d.HasSchema(ctx); !ok || err != nil {
		t.Errorf("HasSchema = %v, %v", ok, err)
	}
}

func TestDBSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hal9.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	es := seed(t, st)
	checkDBVerdict(t, "sqlite://"+path, es) // while the server's store is open (WAL)
	st.Close()
	checkDBVerdict(t, "sqlite://"+path, es)
	// Read-only: a missing file is an error, not a new empty database.
	missing := filepath.Join(t.TempDir(), "none.db")
	if v := VerifyDB(context.Background(), "sqlite://"+missing, es); v.Error == "" || v.OK() {
		t.Errorf("missing database: %+v", v)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("the reader created the missing database file")
	}
}

func TestDBPostgres(t *testing.T) {
	url := infratest.PostgresURL(t)
	st, err := postgres.Open(context.Background(), url, postgres.Options{MaxConns: 2, MinConns: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkDBVerdict(t, url, seed(t, st))
}
