package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/durationflag"
	"github.com/hal9-lab/hal9-lab/lab/loadbench"
)

const benchUsage = `usage: hal9-lab bench engine [--connections 64] [--duration 8s] [--rounds 3] [--threads 2] [--engines OLD_HAL9LAB,...]
       hal9-lab bench endpoint

engine: the load engine (hal9-lab load, constant-vus) against wrk and, when
installed, vegeta, on a trivial endpoint served by a separate process, with
the same connections and duration, taking turns round after round; prints
each client's req/s and requests per CPU second (its own rusage).
endpoint: serve that endpoint on a free loopback port (its URL on stdout).

flags of bench engine:`

// runBench is `hal9-lab bench engine` and `hal9-lab bench endpoint`.
func runBench(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "engine" && args[0] != "endpoint") {
		return errors.New(strings.TrimSuffix(benchUsage, "\n\nflags of bench engine:"))
	}
	if args[0] == "endpoint" {
		if len(args) > 1 {
			return fmt.Errorf("bench endpoint: unexpected argument %q", args[1])
		}
		return loadbench.Endpoint(ctx, os.Stdout)
	}
	fs := flag.NewFlagSet("bench engine", flag.ContinueOnError)
	conns := fs.Int("connections", 64, "connections: engine VUs, wrk -c, vegeta workers")
	var dur time.Duration
	durationflag.Var(fs, &dur, "duration", 8*time.Second, "how long each client runs in each round (whole seconds)")
	rounds := fs.Int("rounds", 3, "rounds; the clients take turns in each, in alternating order")
	threads := fs.Int("threads", 2, "wrk -t")
	engines := fs.String("engines", "", "other hal9-lab binaries (comma-separated) whose engines take turns too, e.g. main's for before and after in one run")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench engine: unexpected argument %q", fs.Arg(0))
	}
	if *conns < 1 || *rounds < 1 || *threads < 1 || dur < time.Second || dur%time.Second != 0 {
		return errors.New("bench engine: --connections, --rounds and --threads must be ≥ 1 and --duration whole seconds ≥ 1s")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench engine: find hal9-lab's own binary: %w", err)
	}
	var others []string
	for _, e := range strings.Split(*engines, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if st, err := os.Stat(e); err != nil || st.IsDir() {
			return fmt.Errorf("bench engine: --engines %s: not a hal9-lab binary (build one: git worktree add /tmp/old main && (cd /tmp/old && go build -o bin/hal9-lab ./cmd/hal9-lab))", e)
		}
		others = append(others, e)
	}
	fmt.Fprintf(os.Stderr, "bench engine: %d connections, %s per client, %d rounds…\n", *conns, dur, *rounds)
	res, err := loadbench.Run(ctx, loadbench.Options{Connections: *conns, Duration: dur, Rounds: *rounds, Threads: *threads,
		Lab: self, Others: others, Progress: os.Stderr})
	if err != nil {
		return err
	}
	res.WriteTable(os.Stdout)
	return nil
}
