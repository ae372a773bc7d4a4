// Command hal9 is the HAL9 neuron server: `hal9 serve`, `hal9 migrate`,
// `hal9 config`, `hal9 version`. It only parses flags and calls server/app,
// which wires the server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/server/app"
	"github.com/hal9-lab/hal9-lab/server/telemetry"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: hal9 COMMAND [flags]

commands:
  serve     run the API (--addr) and admin (--admin-addr) listeners
  migrate   apply database migrations and exit
  config    print the effective configuration as JSON (secrets redacted)
  version   print the version

Run 'hal9 serve --help' for the flags; each has a HAL9_* environment variable.
`)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	case "version", "--version":
		fmt.Fprintf(stdout, "hal9 %s (%s, %s)\n", version, runtime.Version(), revision())
		return 0
	case "serve", "migrate", "config":
	default:
		fmt.Fprintf(stderr, "hal9: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}
	cfg, fs, err := parseConfig(cmd, rest, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "hal9 %s: %v\n", cmd, err)
		return 2
	}
	cfg.Version = version
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "hal9 %s: invalid configuration:\n%v\n", cmd, err)
		return 2
	}
	log, err := telemetry.NewLogger(stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "hal9 %s: %v\n", cmd, err)
		return 2
	}
	switch cmd {
	case "config":
		b, err := effectiveConfig(fs, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "hal9 config: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
		return 0
	case "migrate":
		if err := app.Migrate(ctx, cfg, log); err != nil {
			fmt.Fprintf(stderr, "hal9 migrate: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "migrations applied to %s\n", redact.URL(cfg.EffectiveDatabaseURL()))
		return 0
	}
	return serve(ctx, cfg, log, stderr)
}

func serve(ctx context.Context, cfg app.Config, log *slog.Logger, stderr io.Writer) int {
	// go-redis logs through a process-wide logger (plain text on stderr by
	// default); send it into our JSON log, once, here in the binary.
	redis.SetLogger(app.RedisLogger{Log: log})
	// Bind first: a taken port fails before the store is opened or migrated.
	lns, err := app.Bind(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "hal9 serve: %v\n", err)
		return 1
	}
	srv, err := app.Open(ctx, cfg, log)
	if err != nil {
		lns.Close()
		fmt.Fprintf(stderr, "hal9 serve: %v\n", err)
		return 1
	}
	srv.UseListeners(lns)
	if err := srv.Serve(ctx); err != nil {
		log.Error("shutdown finished with errors", "error", err)
		return 1
	}
	return 0
}

func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown revision"
}
