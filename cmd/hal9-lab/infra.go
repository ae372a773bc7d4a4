package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/infra"
)

const infraUsage = `usage: hal9-lab infra up [--postgres] [--redis] [--infra auto|external|testcontainers|process] [--durable] [--env-file PATH]
                      [--pg-image REF] [--redis-image REF]
       hal9-lab infra images [--postgres] [--redis] [--pg-image REF] [--redis-image REF] [--rebuild]
       hal9-lab infra images --server [--version V] [--tag TAG] [--context DIR [--stage-only]] [--dockerfile FILE]

up: starts PostgreSQL and/or Redis for the lab (neither flag: both), prints
HAL9_DATABASE_URL=… and HAL9_REDIS_URL=… on stdout (logs go to stderr),
and holds them until SIGINT/SIGTERM, then stops everything it started.

  hal9-lab infra up --env-file /tmp/hal9.env &
  set -a; . /tmp/hal9.env; set +a    # once the file exists

images: makes sure the Docker engine has the images of the testcontainers
mode: the public ones (--pg-image, --redis-image; $HAL9_PG_IMAGE,
$HAL9_REDIS_IMAGE; "host" skips them) when present or pullable, else images
built FROM scratch from this machine's PostgreSQL and Redis. With --server:
stages the server image's build context (static hal9 and hal9-lab built
with CGO_ENABLED=0, a non-root user, CA certificates) in --context (default:
a temporary directory) and builds the repository's Dockerfile on it,
tagged --tag (default hal9-lab/hal9:VERSION); --stage-only stops after the
context ('make image' and 'make image-context' run these).
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
	case "images":
		return infraImages(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, infraUsage)
		return nil
	}
	fmt.Fprint(stderr, infraUsage)
	return fmt.Errorf("unknown infra subcommand %q: use 'up' or 'images'", args[0])
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
	var images infra.ImageOptions
	imageFlags(fs, &images)
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
	env, err := infra.Start(ctx, infra.Options{Postgres: *pg, Redis: *rd, Mode: mode, Logger: log, Images: images,
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
	var held []heldServer
	for _, p := range env.Processes {
		held = append(held, processHeld{p})
	}
	if env.Containers != nil {
		for _, c := range env.Containers.Containers() {
			held = append(held, containerHeld{c})
		}
	}
	return holdUntilDone(ctx, held, time.Second)
}

// imageFlags are the image choices of the testcontainers mode.
func imageFlags(fs *flag.FlagSet, o *infra.ImageOptions) {
	fs.StringVar(&o.PostgresImage, "pg-image", "", "PostgreSQL image to prefer when the engine has it or can pull it (default $"+infra.EnvPostgresImage+", else "+infra.DefaultPostgresImage+`); "host": the image built from this machine's PostgreSQL`)
	fs.StringVar(&o.RedisImage, "redis-image", "", "Redis image to prefer (default $"+infra.EnvRedisImage+", else "+infra.DefaultRedisImage+`); "host": the image built from this machine's Redis`)
}

func infraImages(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("infra images", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, infraUsage); fs.PrintDefaults() }
	pg := fs.Bool("postgres", false, "the PostgreSQL image (with neither --postgres nor --redis: both)")
	rd := fs.Bool("redis", false, "the Redis image (with neither --postgres nor --redis: both)")
	var opts infra.ImageOptions
	imageFlags(fs, &opts)
	fs.BoolVar(&opts.Rebuild, "rebuild", false, "build the images from this machine's servers even when they exist")
	server := fs.Bool("server", false, "build the server's image (Dockerfile at the repository root) instead")
	version := fs.String("version", "", "--server: the server's version (hal9 version; default: git describe --tags --always --dirty, else dev)")
	tag := fs.String("tag", "", "--server: the image's name:tag (default hal9-lab/hal9:VERSION)")
	dir := fs.String("context", "", "--server: where to stage the build context (emptied first; default: a temporary directory, removed after)")
	stageOnly := fs.Bool("stage-only", false, "--server: stage the context in --context and build no image")
	dockerfile := fs.String("dockerfile", "", "--server: the Dockerfile (default: the repository's)")
	verbose := fs.Bool("v", false, "debug logs (the engine's build output)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("infra images: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("infra images: unexpected argument %q", fs.Arg(0))
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	begin := time.Now()
	if *server {
		if *pg || *rd || opts.Rebuild {
			return errors.New("infra images --server builds the server's image only: drop --postgres, --redis and --rebuild")
		}
		if *stageOnly && *dir == "" {
			return errors.New("infra images --server --stage-only: give --context DIR, where to stage it (make image-context stages bin/image)")
		}
		return serverImage(ctx, serverImageFlags{version: *version, tag: *tag, dir: *dir, dockerfile: *dockerfile, stageOnly: *stageOnly}, stdout, log, begin)
	}
	if *tag != "" || *dir != "" || *version != "" || *stageOnly || *dockerfile != "" {
		return errors.New("infra images: --tag, --version, --context, --stage-only and --dockerfile go with --server")
	}
	var kinds []string
	if *pg || !*rd {
		kinds = append(kinds, "postgres")
	}
	if *rd || !*pg {
		kinds = append(kinds, "redis")
	}
	imgs, err := infra.EnsureImages(ctx, kinds, opts, log)
	for _, img := range imgs {
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", img.Kind, img.Ref, img.Source, img.Took.Round(time.Millisecond))
	}
	return err
}

type serverImageFlags struct {
	version, tag, dir, dockerfile string
	stageOnly                     bool
}

// serverImage is `infra images --server`: stage the context, build it.
func serverImage(ctx context.Context, f serverImageFlags, stdout io.Writer, log *slog.Logger, begin time.Time) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if f.version == "" {
		f.version = build.GitDescribe(root)
	}
	if f.tag == "" {
		f.tag = "hal9-lab/hal9:" + f.version
	}
	if f.dockerfile == "" {
		f.dockerfile = filepath.Join(root, "Dockerfile")
	}
	if f.dir == "" {
		tmp, err := os.MkdirTemp("", "hal9-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		f.dir = tmp
	}
	if err := build.Stage(ctx, build.StageOptions{Root: root, Dir: f.dir, Version: f.version, WithLab: true}); err != nil {
		return err
	}
	if f.stageOnly {
		fmt.Fprintf(stdout, "server\t%s\tstaged\t%s\n", f.dir, time.Since(begin).Round(time.Millisecond))
		return nil
	}
	labels := map[string]string{"org.opencontainers.image.title": "hal9", "org.opencontainers.image.version": f.version}
	if err := infra.BuildFromDir(ctx, f.dockerfile, f.dir, f.tag, labels, log); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "server\t%s\tbuilt\t%s\n", f.tag, time.Since(begin).Round(time.Millisecond))
	return nil
}

// heldServer is a server infra up holds: a process or a container.
type heldServer interface {
	Running(context.Context) bool
	Gone(context.Context) string // why the printed URL points at nothing
}

type processHeld struct{ p *infra.Process }

func (h processHeld) Running(context.Context) bool { return h.p.Running() }
func (h processHeld) Gone(context.Context) string {
	return fmt.Sprintf("the server on %s exited by itself; its log is %s", h.p.URL(), h.p.LogPath())
}

type containerHeld struct{ c *infra.Container }

func (h containerHeld) Running(ctx context.Context) bool { return h.c.Running(ctx) }
func (h containerHeld) Gone(ctx context.Context) string {
	return fmt.Sprintf("the %s container (%.12s) exited by itself; its last output:\n%s", h.c.Name, h.c.ID, h.c.LogTail(ctx, 2048))
}

// holdUntilDone waits for Ctrl-C, or fails as soon as one of the servers it
// holds exits by itself: the printed URLs would point at nothing.
func holdUntilDone(ctx context.Context, held []heldServer, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for _, h := range held {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				gone := !h.Running(cctx) && ctx.Err() == nil
				msg := ""
				if gone {
					msg = h.Gone(cctx)
				}
				cancel()
				if gone {
					return errors.New("infra up: " + msg)
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
