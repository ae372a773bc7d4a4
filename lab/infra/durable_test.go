package infra

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The process mode's PostgreSQL keeps production durability when Durable
// is set, and turns it off (for speed) when not.
func TestPostgresProcessDurable(t *testing.T) {
	needProcess(t, "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, durable := range []bool{true, false} {
		p, err := StartPostgresProcess(ctx, ProcessOptions{Durable: durable})
		if err != nil {
			t.Fatal(err)
		}
		off, err := PostgresDurability(ctx, p.URL())
		p.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if durable && len(off) != 0 {
			t.Errorf("durable: %v are off", off)
		}
		if !durable && strings.Join(off, ",") != "fsync=off,synchronous_commit=off,full_page_writes=off" {
			t.Errorf("not durable: off = %v, want all three", off)
		}
	}
}
