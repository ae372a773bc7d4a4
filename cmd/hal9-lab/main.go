// Command hal9-lab runs HAL9's load lab: infrastructure, load, orchestrated
// runs, the regression gate, baselines and reports. Each subcommand lives in
// its own file in this package and only parses flags and wires packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries a specific exit code (99: a threshold or gate failed,
// k6's convention) out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"run", "orchestrated lab run: infra, server, load, compare, report", runRun},
		{"load", "run a scenario file against a running server", runLoad},
		{"capacity", "find the knee: the highest arrival rate at which the SLO holds", runCapacity},
		{"gate", "run repetitions and compare with the stored baseline", runGate},
		{"baseline", "write baselines: baseline update --profile P --runs N", runBaseline},
		{"report", "re-render a run's reports from its summary.json", runReport},
		{"infra", "start PostgreSQL and Redis for the lab: infra up", runInfra},
		{"bench", "benchmarks of the lab itself: bench engine", runBench},
		{"history", "the nightly history: add, import, check (change points), report", runHistory},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: hal9-lab COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'hal9-lab COMMAND -h' for a command's flags.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name != os.Args[1] {
			continue
		}
		err := c.run(ctx, os.Args[2:])
		if err == nil {
			return
		}
		fmt.Fprintf(os.Stderr, "hal9-lab %s: %v\n", c.name, err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "hal9-lab: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}
