package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/hal9-lab/hal9-lab/internal/redact"
)

// Database is one leg run's own database (and Redis logical DB): every
// run starts empty, so runs compare and data never leaks between legs.
type Database struct {
	DatabaseURL string
	RedisURL    string
	cleanup     []func(context.Context) error
}

// Close drops what provisioning created.
func (b *Database) Close(ctx context.Context) error {
	var first error
	for i := len(b.cleanup) - 1; i >= 0; i-- {
		if err := b.cleanup[i](ctx); err != nil && first == nil {
			first = err
		}
	}
	b.cleanup = nil
	return first
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// provisionPostgres creates a fresh database on the server at base and
// returns its URL; cleanup drops it (only what the lab created).
func provisionPostgres(ctx context.Context, base string, b *Database) error {
	name := "hal9lab_" + time.Now().UTC().Format("20060102_150405") + "_" + randomSuffix()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL to create the leg's database: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("parse PostgreSQL URL: %w", err)
	}
	u.Path = "/" + name
	b.DatabaseURL = u.String()
	b.cleanup = append(b.cleanup, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return fmt.Errorf("connect to drop database %s: %w", name, err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	})
	return nil
}

// provisionRedis picks an empty logical database on the Redis at base (it
// never flushes one: the Redis may be shared) and returns its URL; cleanup
// deletes the hal9:* keys the run wrote there.
func provisionRedis(ctx context.Context, base string, b *Database) error {
	opt, err := redis.ParseURL(base)
	if err != nil {
		return fmt.Errorf("parse Redis URL %s: %w", redact.URL(base), err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for db := 15; db >= 1; db-- { // from the top: tests tend to take the low ones
		o := *opt
		o.DB = db
		c := redis.NewClient(&o)
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			c.Close()
			return fmt.Errorf("Redis at %s: %w", redact.URL(base), err)
		}
		if n != 0 {
			c.Close()
			continue
		}
		// Claim it so a concurrent lab picks another one.
		claim := "hal9lab:claim:" + randomSuffix()
		if err := c.Set(ctx, claim, "1", time.Hour).Err(); err != nil {
			c.Close()
			return fmt.Errorf("claim Redis db %d: %w", db, err)
		}
		u, _ := url.Parse(base)
		u.Path = fmt.Sprintf("/%d", db)
		b.RedisURL = u.String()
		b.cleanup = append(b.cleanup, func(ctx context.Context) error {
			defer c.Close()
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			for _, pattern := range []string{"hal9:*", claim} {
				iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
				var keys []string
				for iter.Next(ctx) {
					keys = append(keys, iter.Val())
					if len(keys) == 1000 {
						if err := c.Del(ctx, keys...).Err(); err != nil {
							return fmt.Errorf("clean Redis db %d: %w", db, err)
						}
						keys = keys[:0]
					}
				}
				if err := iter.Err(); err != nil {
					return fmt.Errorf("clean Redis db %d: %w", db, err)
				}
				if len(keys) > 0 {
					if err := c.Del(ctx, keys...).Err(); err != nil {
						return fmt.Errorf("clean Redis db %d: %w", db, err)
					}
				}
			}
			return nil
		})
		return nil
	}
	return fmt.Errorf("Redis at %s: no empty logical database among 1..15 (the lab never flushes a shared Redis)", redact.URL(base))
}
