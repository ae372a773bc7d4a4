package faults

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
)

// during runs one fault from now and calls probe halfway through it; it
// returns the fault's record and the probe's error.
func during(t *testing.T, env Env, s Spec, probe func() error) (Record, error) {
	t.Helper()
	done := make(chan []Record, 1)
	go func() { done <- Run(context.Background(), time.Now(), []Spec{s}, env) }()
	time.Sleep(s.Duration / 2)
	perr := probe()
	recs := <-done
	if len(recs) != 1 {
		t.Fatalf("records %+v", recs)
	}
	if recs[0].Err != nil {
		t.Fatalf("%s: %v", s.Name(), recs[0].Err)
	}
	return recs[0], perr
}

// Redis kill, pause and stop-start on a real local redis-server: down (or
// frozen) while the fault lasts, answering again once it is healed.
func TestRunRedisProcess(t *testing.T) {
	p := infratest.RedisProcess(t)
	o, _ := redis.ParseURL(p.URL())
	o.ReadTimeout, o.DialTimeout, o.MaxRetries, o.DialerRetries = 200*time.Millisecond, 200*time.Millisecond, -1, 1 // one quick try: a retrying dial could outlast the fault
	c := redis.NewClient(o)
	defer c.Close()
	ctx := context.Background()
	env := Env{Redis: p}
	for _, kind := range []string{"kill", "pause", "stop-start"} {
		s := Spec{Target: Redis, Kind: kind, Duration: 800 * time.Millisecond}
		var probed time.Time
		r, err := during(t, env, s, func() error { probed = time.Now(); return c.Ping(ctx).Err() })
		if err == nil {
			t.Errorf("%s: Redis answered during the fault (probed %s after the injection, healed after %s)", kind, probed.Sub(r.Injected), r.Healed.Sub(r.Injected))
		}
		if got := r.Healed.Sub(r.Injected); got < s.Duration {
			t.Errorf("%s: healed after %s, before its duration %s", kind, got, s.Duration)
		}
		if err := c.Ping(ctx).Err(); err != nil {
			t.Errorf("%s healed: %v", kind, err)
		}
	}
}

// PostgreSQL crash (SIGKILL of the postmaster), restart and pause on a
// real local server.
func TestRunPostgresProcess(t *testing.T) {
	p := infratest.PostgresProcess(t)
	ctx := context.Background()
	ping := func() error {
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		conn, err := pgx.Connect(c, p.URL())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(c, "SELECT 1")
		return err
	}
	env := Env{Postgres: p}
	pid := p.PID()
	// An open connection (a backend of its own, not in the postmaster's
	// process group) must freeze with the pause too, as the server's pooled
	// connections do.
	held, err := pgx.Connect(ctx, p.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)
	query := func() error {
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := held.Exec(c, "SELECT 1")
		return err
	}
	if _, err := during(t, env, Spec{Target: Postgres, Kind: "pause", Duration: 900 * time.Millisecond}, query); err == nil {
		t.Error("pause: a pooled connection's query was answered during the pause")
	}
	for _, s := range []Spec{
		{Target: Postgres, Kind: "crash", Duration: 600 * time.Millisecond},
		{Target: Postgres, Kind: "pause", Duration: 900 * time.Millisecond},
	} {
		if _, err := during(t, env, s, ping); err == nil {
			t.Errorf("%s: PostgreSQL answered during the fault", s.Kind)
		}
		if err := ping(); err != nil {
			t.Errorf("%s healed: %v", s.Kind, err)
		}
	}
	if p.PID() == pid {
		t.Error("the crash did not start a new postmaster")
	}
	recs := Run(ctx, time.Now(), []Spec{{Target: Postgres, Kind: "restart"}}, env)
	if recs[0].Err != nil || ping() != nil {
		t.Errorf("restart: %v, then %v", recs[0].Err, ping())
	}
}

// LLM faults are a PUT to the admin listener, undone with the settings
// read before.
func TestRunLLM(t *testing.T) {
	var mu sync.Mutex
	var puts []map[string]any
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/llm/faults" {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodPut {
			var m map[string]any
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &m)
			mu.Lock()
			puts = append(puts, m)
			mu.Unlock()
		}
		_, _ = w.Write([]byte(`{"error_rate":0,"latency_scale":1,"rate_limit_rpm":0}`))
	}))
	defer admin.Close()
	recs := Run(context.Background(), time.Now(), []Spec{{Target: LLM, Kind: "rate-limit", RPM: 6, Duration: 50 * time.Millisecond}},
		Env{AdminURLs: []string{admin.URL}})
	if recs[0].Err != nil {
		t.Fatal(recs[0].Err)
	}
	if len(puts) != 2 || puts[0]["rate_limit_rpm"] != 6.0 || puts[1]["rate_limit_rpm"] != 0.0 || puts[1]["latency_scale"] != 1.0 {
		t.Errorf("PUTs %v: want the fault, then the settings from before", puts)
	}
	recs = Run(context.Background(), time.Now(), []Spec{{Target: LLM, Kind: "error-rate", Rate: 1, Duration: time.Millisecond}}, Env{})
	if recs[0].Err == nil {
		t.Error("an LLM fault without an admin URL must fail")
	}
}

// fakeServer is a ServerHandle that notes what was done to it.
type fakeServer struct {
	mu       sync.Mutex
	signals  []syscall.Signal
	restarts int
	waited   time.Duration
	exit     int
}

func (f *fakeServer) Signal(s syscall.Signal) error {
	f.mu.Lock()
	f.signals = append(f.signals, s)
	f.mu.Unlock()
	return nil
}
func (f *fakeServer) Wait(d time.Duration) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waited = d
	return f.exit, nil
}
func (f *fakeServer) Restart(context.Context) error {
	f.mu.Lock()
	f.restarts++
	f.mu.Unlock()
	return nil
}
func (f *fakeServer) AdminURL() string { return "" }

func TestRunServer(t *testing.T) {
	srv := &fakeServer{exit: 0}
	var killedNote bool
	env := Env{Servers: []ServerHandle{srv}, Drain: 3 * time.Second, AfterKill: func(context.Context, Spec, time.Time) []string {
		killedNote = true
		return []string{"window"}
	}}
	recs := Run(context.Background(), time.Now(), []Spec{
		{Target: Server, Kind: "sigterm"},
		{Target: Server, Kind: "sigkill", At: 200 * time.Millisecond, Duration: 30 * time.Millisecond},
		{Target: Server, Kind: "port-taken"}, // the lab's own, at start: not played here
	}, env)
	if len(recs) != 2 || recs[0].Err != nil || recs[1].Err != nil {
		t.Fatalf("records %+v", recs)
	}
	if len(srv.signals) != 2 || srv.signals[0] != syscall.SIGTERM || srv.signals[1] != syscall.SIGKILL || srv.restarts != 2 {
		t.Errorf("signals %v, restarts %d", srv.signals, srv.restarts)
	}
	if !killedNote || len(recs[1].Notes) != 1 || *recs[1].ExitCode != 0 {
		t.Errorf("after the SIGKILL: note %v %v", killedNote, recs[1].Notes)
	}
	if recs[1].Healed.Sub(recs[1].Injected) < 30*time.Millisecond {
		t.Errorf("the server stayed down %s, less than the fault's duration", recs[1].Healed.Sub(recs[1].Injected))
	}
	// A run that ends first skips the faults still to come.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	recs = Run(ctx, time.Now(), []Spec{{Target: Server, Kind: "sigkill", At: time.Hour}}, env)
	if recs[0].Err == nil || !recs[0].Injected.IsZero() {
		t.Errorf("a cancelled run: %+v", recs[0])
	}
}
