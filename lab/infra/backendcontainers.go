package infra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// PostgreSQL and Redis as containers of a session (--infra
// testcontainers): their specs, mirroring the process mode's settings,
// and the start of both for an Env.

// postgresArgs mirror the process mode: room for the server's pool of 100,
// and durability off for speed unless durable.
func postgresArgs(durable bool) []string {
	args := []string{"-c", "max_connections=200"}
	if !durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	return args
}

// postgresSpec runs img as "postgres" with a trust-authenticated postgres
// user and database: on a tmpfs when durability is off anyway, in the
// container's own (disk-backed) file system when durable.
func postgresSpec(img *Image, durable bool) ContainerSpec {
	spec := ContainerSpec{
		Name: "postgres", Image: img.Ref, Ports: []int{5432},
		Cmd: append([]string{"postgres"}, postgresArgs(durable)...),
		Ready: func(ctx context.Context, addr string) error {
			return pingPostgres(ctx, "postgres://postgres@"+addr+"/postgres?sslmode=disable&connect_timeout=1")
		},
	}
	if img.Host {
		// Ours: the entrypoint runs initdb as the postgres user into
		// /var/lib/postgresql/data.
		spec.Cmd = append(spec.Cmd, "-c", "jit=off", "-c", "unix_socket_directories=/var/run/postgresql")
		if !durable {
			spec.Tmpfs = map[string]string{"/var/lib/postgresql": fmt.Sprintf("rw,uid=%d,gid=%d", hostUID, hostUID)}
		}
	} else {
		// The official image's entrypoint: trust, user and database postgres.
		spec.Env = map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_USER": "postgres", "POSTGRES_DB": "postgres"}
		if !durable {
			spec.Tmpfs = map[string]string{"/var/lib/postgresql/data": "rw"}
		}
	}
	return spec
}

// redisSpec runs img as "redis" without persistence.
func redisSpec(img *Image) ContainerSpec {
	return ContainerSpec{
		Name: "redis", Image: img.Ref, Ports: []int{6379},
		Cmd: []string{"redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"},
		Ready: func(ctx context.Context, addr string) error {
			return pingRedisRaw(ctx, "redis://"+addr)
		},
	}
}

// startContainers starts the requested backends as containers in a new
// session; on error what was started is removed here.
func startContainers(ctx context.Context, opts Options, log *slog.Logger) (*Env, error) {
	s, err := NewContainerSession(ctx, opts.Images, log)
	if err != nil {
		return nil, err
	}
	env := &Env{Mode: ModeTestcontainers, Containers: s, Stop: s.Close}
	fail := func(err error) (*Env, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return nil, errors.Join(err, s.Close(cctx))
	}
	type backend struct {
		kind string
		want bool
		spec func(*Image) ContainerSpec
		set  func(*Container)
	}
	for _, b := range []backend{
		{"postgres", opts.Postgres, func(img *Image) ContainerSpec { return postgresSpec(img, opts.Durable) }, func(c *Container) {
			env.PostgresURL = "postgres://postgres@" + c.HostAddr(5432) + "/postgres?sslmode=disable"
			env.NetworkPostgresURL = "postgres://postgres@" + c.NetworkAddr(5432) + "/postgres?sslmode=disable"
		}},
		{"redis", opts.Redis, redisSpec, func(c *Container) {
			env.RedisURL = "redis://" + c.HostAddr(6379) + "/0"
			env.NetworkRedisURL = "redis://" + c.NetworkAddr(6379) + "/0"
		}},
	} {
		if !b.want {
			continue
		}
		img, err := s.Image(ctx, b.kind)
		if err != nil {
			return fail(err)
		}
		begin := time.Now()
		c, err := s.Run(ctx, b.spec(img))
		if err != nil {
			return fail(err)
		}
		b.set(c)
		log.Info("infra: "+b.kind+" container ready", "image", img.Ref, "image_from", img.Source,
			"addr", c.HostAddr(b.spec(img).Ports[0]), "took", time.Since(begin).Round(time.Millisecond))
	}
	return env, nil
}
