package infra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// Public images the testcontainers mode prefers, when the engine has them
// or can pull them. Overridden by HAL9_PG_IMAGE / HAL9_REDIS_IMAGE (and
// `hal9-lab infra` flags); the value "host" skips them and uses the images
// built from this machine's servers.
const (
	DefaultPostgresImage = "postgres:15"
	DefaultRedisImage    = "redis:7"
	EnvPostgresImage     = "HAL9_PG_IMAGE"
	EnvRedisImage        = "HAL9_REDIS_IMAGE"
	// ImageHost names the images built from the host's own servers.
	ImageHost = "host"
)

// ImageOptions says which images to use.
type ImageOptions struct {
	// PostgresImage, RedisImage: a public image to prefer ("" = the
	// variable, else the default), or ImageHost.
	PostgresImage, RedisImage string
	// PullIdle aborts a pull that reports no progress for this long
	// (no registry reachable: fail fast). Zero: 15s.
	PullIdle time.Duration
	// PostgresBinDir, RedisServer locate the host's servers for the
	// images built here (see ProcessOptions).
	PostgresBinDir, RedisServer string
	// Rebuild builds the host images even when the current one exists.
	Rebuild bool
}

func (o ImageOptions) postgresRef() string {
	return firstNonEmpty(o.PostgresImage, os.Getenv(EnvPostgresImage), DefaultPostgresImage)
}

func (o ImageOptions) redisRef() string {
	return firstNonEmpty(o.RedisImage, os.Getenv(EnvRedisImage), DefaultRedisImage)
}

func (o ImageOptions) pullIdle() time.Duration {
	if o.PullIdle > 0 {
		return o.PullIdle
	}
	return 15 * time.Second
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x = strings.TrimSpace(x); x != "" {
			return x
		}
	}
	return ""
}

// Image is an image the lab runs, and where it came from.
type Image struct {
	Kind   string // postgres or redis
	Ref    string // what to run: postgres:15, hal9-lab/postgres:15.20-<hash>
	Source string // "present", "pulled", "built", "built before"
	Host   bool   // built from this machine's servers (our entrypoint, our paths)
	Took   time.Duration
}

// ResolveImage finds the image of kind ("postgres" or "redis") in this
// order: the public image when the engine has it; the host-built image of
// the servers installed here when it was built before; the public image
// pulled (aborted after PullIdle without progress); the host-built image,
// built now. With ref ImageHost the public image is not considered.
func ResolveImage(ctx context.Context, cli *client.Client, kind string, opts ImageOptions, log *slog.Logger) (*Image, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	begin := time.Now()
	var ref string
	switch kind {
	case "postgres":
		ref = opts.postgresRef()
	case "redis":
		ref = opts.redisRef()
	default:
		return nil, fmt.Errorf("unknown image kind %q: postgres or redis", kind)
	}
	public := ref != ImageHost
	if public && !opts.Rebuild {
		if _, err := cli.ImageInspect(ctx, ref); err == nil {
			return &Image{Kind: kind, Ref: ref, Source: "present", Took: time.Since(begin)}, nil
		}
	}
	recipe, err := hostRecipe(kind, opts)
	if err != nil {
		if !public {
			return nil, err
		}
		recipe = nil // no host servers: the public image is the only way
	}
	if recipe != nil && !opts.Rebuild {
		if _, err := cli.ImageInspect(ctx, recipe.tag); err == nil {
			return &Image{Kind: kind, Ref: recipe.tag, Source: "built before", Host: true, Took: time.Since(begin)}, nil
		}
	}
	var pullErr error
	if public && !opts.Rebuild {
		if pullErr = pullImage(ctx, cli, ref, opts.pullIdle()); pullErr == nil {
			log.Info("infra: image pulled", "image", ref, "took", time.Since(begin).Round(time.Millisecond))
			return &Image{Kind: kind, Ref: ref, Source: "pulled", Took: time.Since(begin)}, nil
		}
		log.Info("infra: image cannot be pulled; building one from this machine's "+kind, "image", ref, "err", pullErr)
	}
	if recipe == nil {
		return nil, fmt.Errorf("image %s: not present, pull failed (%v), and no local %s to build one from: %w", ref, pullErr, kind, err)
	}
	if err := buildHostImage(ctx, cli, recipe, log); err != nil {
		return nil, err
	}
	return &Image{Kind: kind, Ref: recipe.tag, Source: "built", Host: true, Took: time.Since(begin)}, nil
}

// pullImage pulls ref, giving up when the engine reports nothing for idle
// (an unreachable registry can otherwise hang in DNS or TCP).
func pullImage(ctx context.Context, cli *client.Client, ref string, idle time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(idle, cancel)
	defer timer.Stop()
	resp, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull %s: no answer within %v", ref, idle)
		}
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer resp.Close()
	err = readJSONStream(resp, func() { timer.Reset(idle) }, nil)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("pull %s: no progress for %v", ref, idle)
	}
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// readJSONStream reads the engine's progress messages (pull, build) until
// the end, returning the first error message; tick is called on each
// message, line (when not nil) with each build output line.
func readJSONStream(r io.Reader, tick func(), line func(string)) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if tick != nil {
			tick()
		}
		if m.Error != nil {
			return errors.New(strings.TrimSpace(m.Error.Message))
		}
		if line != nil && strings.TrimSpace(m.Stream) != "" {
			line(strings.TrimSpace(m.Stream))
		}
	}
}

// EnsureImages resolves the images of kinds ("postgres", "redis") on the
// engine testcontainers finds, building them from this machine's servers
// when needed (see ResolveImage): `hal9-lab infra images`.
func EnsureImages(ctx context.Context, kinds []string, opts ImageOptions, log *slog.Logger) ([]*Image, error) {
	cli, err := newEngine(ctx, log)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var imgs []*Image
	for _, k := range kinds {
		img, err := ResolveImage(ctx, cli, k, opts, log)
		if err != nil {
			return imgs, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}
