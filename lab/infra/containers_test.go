package infra

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/redis/go-redis/v9"
)

// needDocker returns an engine client, or skips the test when no engine
// answers (fails it under HAL9_REQUIRE_INFRA=1, as CI sets: .ci/run starts
// one).
func needDocker(t *testing.T) *client.Client {
	t.Helper()
	cli, err := newEngine(context.Background(), nil)
	if err != nil {
		if os.Getenv("HAL9_REQUIRE_INFRA") == "1" {
			t.Fatalf("HAL9_REQUIRE_INFRA=1 but %v", err)
		}
		t.Skipf("needs a Docker engine: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// labelled lists the containers and networks carrying label.
func labelled(t *testing.T, cli *client.Client, label string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := client.Filters{}.Add("label", label)
	ctrs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range ctrs.Items {
		out = append(out, "container "+strings.Join(c.Names, ","))
	}
	for _, n := range nets.Items {
		out = append(out, "network "+n.Name)
	}
	return out
}

// TestTestcontainersIntegration starts PostgreSQL and Redis in containers
// (the public images when the engine has them, else the images built from
// this machine's servers), uses what the server's schema needs, reaches
// Redis from another container by name on the session network, and leaves
// nothing with the session's label after Stop.
func TestTestcontainersIntegration(t *testing.T) {
	cli := needDocker(t)
	noExternal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{Postgres: true, Redis: true, Mode: ModeTestcontainers})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop(context.Background())
	s := env.Containers
	if env.Mode != ModeTestcontainers || s == nil {
		t.Fatalf("env = %+v", env)
	}
	for _, u := range []string{env.PostgresURL, env.RedisURL} {
		if !strings.Contains(u, "127.0.0.1:") {
			t.Errorf("%s: published port not on 127.0.0.1", u)
		}
	}
	if env.NetworkPostgresURL != "postgres://postgres@postgres:5432/postgres?sslmode=disable" || env.NetworkRedisURL != "redis://redis:6379/0" {
		t.Errorf("network URLs %q %q", env.NetworkPostgresURL, env.NetworkRedisURL)
	}
	if ip := net.ParseIP(s.Gateway); ip == nil || !strings.Contains(s.Subnet, "/") {
		t.Errorf("gateway %q subnet %q", s.Gateway, s.Subnet)
	}

	conn, err := pgx.Connect(ctx, env.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var lexemes string
	if err := conn.QueryRow(ctx, "SELECT to_tsvector('english', 'The neurons were firing')::text").Scan(&lexemes); err != nil {
		t.Fatalf("full-text search (snowball dictionary): %v", err)
	}
	if lexemes != "'fire':4 'neuron':2" {
		t.Errorf("to_tsvector = %s", lexemes)
	}
	if _, err := conn.Exec(ctx, `CREATE FUNCTION twice(x int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 2*x; END $$`); err != nil {
		t.Fatalf("PL/pgSQL: %v", err)
	}
	var tz string
	if err := conn.QueryRow(ctx, "SELECT now()::timestamptz AT TIME ZONE 'Europe/Paris' IS NOT NULL, current_setting('TimeZone')").Scan(new(bool), &tz); err != nil {
		t.Fatalf("time zones: %v", err)
	}

	// Container to container, by name: a second Redis replicates the
	// first through the session network.
	rdb := redis.NewClient(mustRedisOptions(t, env.RedisURL))
	defer rdb.Close()
	if err := rdb.Set(ctx, "hal9:k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Diskless sync waits 5 s for more replicas by default.
	if err := rdb.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
	img, err := s.Image(ctx, "redis")
	if err != nil {
		t.Fatal(err)
	}
	replica := redisSpec(img)
	replica.Name = "replica"
	fixed := closedPortT(t)
	replica.HostPorts = map[int]int{6379: fixed}
	replica.Cmd = append(replica.Cmd, "--replicaof", "redis", "6379")
	c, err := s.Run(ctx, replica)
	if err != nil {
		t.Fatal(err)
	}
	if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(fixed)); c.HostAddr(6379) != want {
		t.Errorf("replica published on %s, want the fixed %s", c.HostAddr(6379), want)
	}
	rep := redis.NewClient(mustRedisOptions(t, "redis://"+c.HostAddr(6379)))
	defer rep.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := rep.Get(ctx, "hal9:k").Result()
		if err == nil && v == "v" {
			break
		}
		if time.Now().After(deadline) {
			info, _ := rep.Info(ctx, "replication").Result()
			t.Fatalf("replica never got the key through redis:6379 (%v)\n%s", err, info)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if code, err := c.Stop(ctx, 10*time.Second); err != nil || code != 0 {
		t.Errorf("stopped replica: exit code %d, %v; want 0 (SIGTERM)", code, err)
	}
	if c.Running(ctx) {
		t.Error("replica still running after Stop")
	}
	var logs strings.Builder
	if err := c.WriteLogs(ctx, &logs); err != nil || !strings.Contains(logs.String(), "MASTER <-> REPLICA sync") {
		t.Errorf("replica logs (%v):\n%s", err, logs.String())
	}

	label := LabelSession + "=" + s.ID
	if got := labelled(t, cli, label); len(got) != 4 { // postgres, redis, replica, the network
		t.Errorf("labelled %s: %v, want 3 containers and the network", label, got)
	}
	if err := env.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := labelled(t, cli, label); len(got) > 0 {
		t.Errorf("left after Stop: %v", got)
	}
}

func TestEnvNetworkURL(t *testing.T) {
	env := &Env{Mode: ModeTestcontainers, Containers: &ContainerSession{},
		PostgresURL: "postgres://postgres@127.0.0.1:32771/postgres?sslmode=disable", NetworkPostgresURL: "postgres://postgres@postgres:5432/postgres?sslmode=disable",
		RedisURL: "redis://127.0.0.1:32775/0", NetworkRedisURL: "redis://redis:6379/0"}
	for in, want := range map[string]string{
		"postgres://postgres@127.0.0.1:32771/hal9lab_x?sslmode=disable": "postgres://postgres@postgres:5432/hal9lab_x?sslmode=disable",
		"redis://127.0.0.1:32775/7":                                     "redis://redis:6379/7",
		"redis://127.0.0.1:32771/7":                                     "", // PostgreSQL's port, Redis's scheme
		"postgres://postgres@127.0.0.1:5432/x":                          "",
	} {
		got, err := env.NetworkURL(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("NetworkURL(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := (&Env{Mode: ModeProcess}).NetworkURL("redis://127.0.0.1:1/0"); err == nil || !strings.Contains(err.Error(), "no container network") {
		t.Errorf("process mode: err = %v", err)
	}
}

func mustRedisOptions(t *testing.T, u string) *redis.Options {
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestPullFailsFast: a registry that accepts connections and never
// answers costs the idle timeout, not a hang; one that refuses fails at once.
func TestPullFailsFast(t *testing.T) {
	cli := needDocker(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it, say nothing
		}
	}()
	ctx := context.Background()
	begin := time.Now()
	err = pullImage(ctx, cli, l.Addr().String()+"/hal9/silent:1", time.Second)
	if err == nil {
		t.Fatal("pull from a silent registry succeeded")
	}
	t.Logf("silent registry: %v after %v", err, time.Since(begin).Round(time.Millisecond))
	if time.Since(begin) > 30*time.Second {
		t.Errorf("pull took %v with a 1s idle timeout", time.Since(begin))
	}
	closed := closedPortT(t)
	if err := pullImage(ctx, cli, fmt.Sprintf("127.0.0.1:%d/hal9/none:1", closed), 10*time.Second); err == nil {
		t.Fatal("pull from a closed port succeeded")
	}
}

func closedPortT(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

// TestSweepDeadOwners: what a dead lab of this machine left is removed by
// the next session; what a live one holds is not.
func TestSweepDeadOwners(t *testing.T) {
	cli := needDocker(t)
	ctx := context.Background()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	me := self()
	mk := func(name string, o owner) {
		labels := o.labels()
		labels[LabelSession] = "sweeptest"
		if _, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = cli.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{}) })
	}
	deadName := fmt.Sprintf("hal9-lab-sweep-dead-%d", os.Getpid())
	liveName := fmt.Sprintf("hal9-lab-sweep-live-%d", os.Getpid())
	mk(deadName, owner{host: me.host, pid: strconv.Itoa(dead.Process.Pid), start: "x"})
	mk(liveName, me)
	sweepDeadOwners(ctx, cli, nil)
	got := strings.Join(labelled(t, cli, LabelSession+"=sweeptest"), " ")
	if strings.Contains(got, deadName) {
		t.Errorf("the dead owner's network survived the sweep: %s", got)
	}
	if !strings.Contains(got, liveName) {
		t.Errorf("the live owner's network was swept: %s", got)
	}
}

// ---- a lab killed by a signal leaves no container and no network ----

// TestKilledLabLeavesNoContainers checks, through the engine API and by
// the session's label, that nothing is left once the lab is gone (see
// TestSignalChild).
func TestKilledLabLeavesNoContainers(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the child")
	}
	cli := needDocker(t)
	for _, tc := range killCases {
		t.Run(tc.name, func(t *testing.T) {
			f, kill := signalChild(t, tc.how, ModeTestcontainers)
			if len(f) != 1 {
				t.Fatalf("child said %q, want its session ID", f)
			}
			label := LabelSession + "=" + f[0]
			if got := labelled(t, cli, label); len(got) != 2 {
				t.Fatalf("before the signal: %v, want the redis container and the network", got)
			}
			kill(tc.sig)
			exited := time.Now()
			deadline := exited.Add(30 * time.Second)
			for {
				left := labelled(t, cli, label)
				if len(left) == 0 {
					t.Logf("nothing labelled %s %v after the child exited", label, time.Since(exited).Round(time.Millisecond))
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("left 30s after the child exited: %v", left)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
