package infra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

// Container images of the testcontainers mode.
const (
	PostgresImage = "postgres:16-alpine"
	RedisImage    = "redis:7-alpine"
)

// dockerCheckTimeout bounds the question "does a Docker engine answer?", so
// that machines without Docker (the usual case here) do not wait.
const dockerCheckTimeout = 2 * time.Second

const dockerInstallHint = "install and start Docker (or Podman with DOCKER_HOST set), or use --infra process"

// dockerHealth asks testcontainers' Docker provider whether an engine
// answers, within dockerCheckTimeout. The library may panic when it finds
// no Docker host at all; that is a "no" too.
func dockerHealth(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dockerCheckTimeout)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				res <- fmt.Errorf("no Docker host: %v", r)
			}
		}()
		p, err := testcontainers.NewDockerProvider()
		if err != nil {
			res <- err
			return
		}
		res <- p.Health(ctx) // closes p
	}()
	select {
	case err := <-res:
		if err != nil {
			where := "DOCKER_HOST=" + os.Getenv("DOCKER_HOST")
			if os.Getenv("DOCKER_HOST") == "" {
				where = "DOCKER_HOST unset, /var/run/docker.sock absent"
				if _, serr := os.Stat("/var/run/docker.sock"); serr == nil {
					where = "DOCKER_HOST unset, /var/run/docker.sock present"
				}
			}
			return fmt.Errorf("no Docker engine answered (%s): %w; %s", where, err, dockerInstallHint)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no Docker engine answered within %v; %s", dockerCheckTimeout, dockerInstallHint)
	}
}

// postgresContainerOptions mirrors the process mode: user and database
// postgres, durability off for speed, room for the server's pool of 100.
func postgresContainerOptions() []testcontainers.ContainerCustomizer {
	return []testcontainers.ContainerCustomizer{
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithCmdArgs(
			"-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=200",
		),
		testcontainers.WithLabels(map[string]string{"org.hal9-lab.infra": "postgres"}),
	}
}

// redisContainerOptions: no persistence, like the process mode.
func redisContainerOptions() []testcontainers.ContainerCustomizer {
	return []testcontainers.ContainerCustomizer{
		testcontainers.WithCmd("redis-server", "--save", "", "--appendonly", "no"),
		testcontainers.WithLabels(map[string]string{"org.hal9-lab.infra": "redis"}),
	}
}

// startContainers starts the requested backends as containers. Ryuk,
// testcontainers' reaper container, removes them should this program die;
// on error what was started is terminated here.
func startContainers(ctx context.Context, opts Options, log *slog.Logger) (*Env, error) {
	if err := dockerHealth(ctx); err != nil {
		return nil, err
	}
	env := &Env{Mode: ModeTestcontainers}
	var started []testcontainers.Container
	stop := func(context.Context) error {
		var errs []error
		for i := len(started) - 1; i >= 0; i-- {
			errs = append(errs, testcontainers.TerminateContainer(started[i]))
		}
		started = nil
		return errors.Join(errs...)
	}
	if opts.Postgres {
		begin := time.Now()
		c, err := tcpostgres.Run(ctx, PostgresImage, postgresContainerOptions()...)
		if c != nil {
			started = append(started, c)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("start container %s: %w", PostgresImage, err), stop(ctx))
		}
		if env.PostgresURL, err = c.ConnectionString(ctx, "sslmode=disable"); err != nil {
			return nil, errors.Join(fmt.Errorf("container %s: connection string: %w", PostgresImage, err), stop(ctx))
		}
		log.Info("infra: postgres container ready", "url", env.PostgresURL, "took", time.Since(begin).Round(time.Millisecond))
	}
	if opts.Redis {
		begin := time.Now()
		c, err := tcredis.Run(ctx, RedisImage, redisContainerOptions()...)
		if c != nil {
			started = append(started, c)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("start container %s: %w", RedisImage, err), stop(ctx))
		}
		if env.RedisURL, err = c.ConnectionString(ctx); err != nil {
			return nil, errors.Join(fmt.Errorf("container %s: connection string: %w", RedisImage, err), stop(ctx))
		}
		log.Info("infra: redis container ready", "url", env.RedisURL, "took", time.Since(begin).Round(time.Millisecond))
	}
	env.Stop = stop
	return env, nil
}
