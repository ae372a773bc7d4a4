package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/durationflag"
	"github.com/hal9-lab/hal9-lab/lab/load"
)

// runBench is `hal9-lab bench engine`: the load engine's request rate
// against a trivial local endpoint, beside wrk's on the same endpoint.
func runBench(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "engine" {
		return errors.New("usage: hal9-lab bench engine [--connections N] [--duration D] [--threads T]")
	}
	fs := flag.NewFlagSet("bench engine", flag.ContinueOnError)
	conns := fs.Int("connections", 50, "connections: engine VUs and wrk -c")
	var dur time.Duration
	durationflag.Var(fs, &dur, "duration", 5*time.Second, "how long each side runs")
	threads := fs.Int("threads", 2, "wrk -t")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench engine: unexpected argument %q", fs.Arg(0))
	}
	if *conns < 1 || dur < time.Second || *threads < 1 {
		return errors.New("bench engine: --connections and --threads must be ≥ 1 and --duration ≥ 1s")
	}
	fmt.Fprintf(os.Stderr, "bench engine: %d connections, %s each for the engine and for wrk…\n", *conns, dur)
	r, err := load.BenchEngine(ctx, load.BenchOptions{Connections: *conns, Duration: dur, Threads: *threads})
	if err != nil {
		return err
	}
	fmt.Printf("engine  %10.0f req/s  (p99 %.2f ms)\n", r.EngineRPS, r.EngineP99)
	fmt.Printf("wrk     %10.0f req/s\n", r.WrkRPS)
	fmt.Printf("ratio   %10.2f × wrk (aim ≥ 0.60)\n", r.Ratio)
	return nil
}
