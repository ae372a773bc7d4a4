package infra

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DurabilitySettings are the PostgreSQL settings that decide whether an
// acknowledged commit is on disk.
var DurabilitySettings = []string{"fsync", "synchronous_commit", "full_page_writes"}

// PostgresDurability reads DurabilitySettings from the server at url and
// returns those that are off ("fsync=off"); none means production
// durability.
func PostgresDurability(ctx context.Context, url string) (off []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("read PostgreSQL's durability settings: %w", err)
	}
	defer conn.Close(context.Background())
	for _, name := range DurabilitySettings {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return nil, fmt.Errorf("read PostgreSQL setting %s: %w", name, err)
		}
		if v == "off" {
			off = append(off, name+"=off")
		}
	}
	return off, nil
}
