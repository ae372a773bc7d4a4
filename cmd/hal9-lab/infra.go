package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra"
)

const infraUsage = `usage: hal9-lab infra up [--postgres] [--redis] [--infra auto|external|testcontainers|process] [--durable] [--env-file PATH]

Starts PostgreSQL and/or Redis for the lab (neither flag: both), prints
HAL9_DATABASE_URL=… and HAL9_REDIS_URL=… on stdout (logs go to stderr),
and holds them until SIGINT/SIGTERM, then stops everything it started.

  hal9-lab infra up --env-file /tmp/hal9.env &
  set -a; . /tmp/hal9.env; set +a    # once the file exists
`

// runInfra: hal9-lab infra up.
func runInfra(ctx context.Context, args []string) error {
	return infraMain(ctx, args, os.Stdout, os.Stderr)
}

func infraMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, infraUsage)
		return errors.New("missing subcommand: use 'hal9-lab infra up'")
	}
	switch args[0] {
	case "up":
		return infraUp(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, infraUsage)
		return nil
	}
	fmt.Fprint(stderr, infraUsage)
	return fmt.Errorf("unknown infra subcommand %q: the only one is 'up'", args[0])
}

func infraUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("infra up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, infraUsage); fs.PrintDefaults() }
	pg := fs.Bool("postgres", false, "start PostgreSQL (with neither --postgres nor --redis: both)")
	rd := fs.Bool("redis", false, "start Redis (with neither --postgres nor --redis: both)")
	modeFlag := fs.String("infra", "auto", "how: auto (external, then testcontainers, then process), external (HAL9_PG_DSN/HAL9_REDIS_URL), testcontainers (Docker), process (local initdb/postgres, redis-server)")
	envFile := fs.String("env-file", "", "also write the variables to this file (removed on exit), for 'set -a; . FILE'")
	durable := fs.Bool("durable", false, "process mode: PostgreSQL with fsync and synchronous_commit on and its data on disk (for measuring commit costs)")
	verbose := fs.Bool("v", false, "debug logs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("infra up: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("infra up: unexpected argument %q: backends are chosen with --postgres and --redis", fs.Arg(0))
	}
	mode, err := infra.ParseMode(*modeFlag)
	if err != nil {
		return fmt.Errorf("infra up: --infra: %w", err)
	}
	if !*pg && !*rd {
		*pg, *rd = true, true
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	begin := time.Now()
	env, err := infra.Start(ctx, infra.Options{Postgres: *pg, Redis: *rd, Mode: mode, Logger: log,
		Process: infra.ProcessOptions{Durable: *durable}})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := env.Stop(sctx); err != nil {
			log.Error("infra: stop", "err", err)
		}
		log.Info("infra: stopped everything")
	}()

	var lines strings.Builder
	if env.PostgresURL != "" {
		fmt.Fprintf(&lines, "HAL9_DATABASE_URL=%s\n", shellQuote(env.PostgresURL))
	}
	if env.RedisURL != "" {
		fmt.Fprintf(&lines, "HAL9_REDIS_URL=%s\n", shellQuote(env.RedisURL))
	}
	if *envFile != "" {
		// Write then rename, so a reader polling for the file sees it whole.
		tmp := *envFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(lines.String()), 0o600); err != nil {
			return fmt.Errorf("infra up: --env-file: %w", err)
		}
		if err := os.Rename(tmp, *envFile); err != nil {
			return fmt.Errorf("infra up: --env-file: %w", err)
		}
		defer os.Remove(*envFile)
	}
	if _, err := io.WriteString(stdout, lines.String()); err != nil {
		return fmt.Errorf("infra up: write stdout: %w", err)
	}
	log.Info("infra: up; Ctrl-C to stop", "mode", env.Mode.String(), "took", time.Since(begin).Round(time.Millisecond))
	return holdUntilDone(ctx, env.Processes, time.Second)
}

// holdUntilDone waits for Ctrl-C, or fails as soon as one of the servers it
// holds exits by itself: the printed URLs would point at nothing.
func holdUntilDone(ctx context.Context, procs []*infra.Process, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for _, p := range procs {
				if !p.Running() {
					return fmt.Errorf("infra up: the server on %s exited by itself; its log is %s", p.URL(), p.LogPath())
				}
			}
		}
	}
}

// shellQuote leaves plain URLs as they are and single-quotes anything else,
// so the line is safe to eval and to source.
func shellQuote(s string) string {
	safe := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./?_-", r)
	}
	if strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 && s != "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
