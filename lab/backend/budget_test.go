package backend

import (
	"strings"
	"testing"
)

func TestPoolPerReplica(t *testing.T) {
	for _, tt := range []struct {
		max, reserved, n int
		want             int
		wantErr          string
	}{
		{max: 100, reserved: 8, n: 1, want: 92},  // a stock server: one server's default 100 does not fit
		{max: 200, reserved: 8, n: 1, want: 100}, // the lab's own: the default, capped
		{max: 100, reserved: 8, n: 3, want: 30},  // three replicas on a stock server
		{max: 200, reserved: 8, n: 3, want: 64},  // three on the lab's own
		{max: 100, reserved: 8, n: 30, want: 3},  // seed 000's 30 pods on a stock server
		{max: 100, reserved: 8, n: 46, want: 2},  // the smallest pool
		{max: 100, reserved: 8, n: 47, wantErr: "fewer than 2 for each of 47 replicas"},
		{max: 10, reserved: 13, n: 1, wantErr: "leaves 0 connections after 13 reserved"},
	} {
		got, err := poolPerReplica(tt.max, tt.reserved, tt.n)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "pgbouncer: true") {
				t.Errorf("poolPerReplica(%d, %d, %d): err %v, want %q and the PgBouncer hint", tt.max, tt.reserved, tt.n, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("poolPerReplica(%d, %d, %d) = %d, %v; want %d", tt.max, tt.reserved, tt.n, got, err, tt.want)
		}
		if tt.n*got+tt.reserved > tt.max {
			t.Errorf("poolPerReplica(%d, %d, %d) = %d: %d × %d + %d exceeds max_connections", tt.max, tt.reserved, tt.n, got, tt.n, got, tt.reserved)
		}
	}
	if got, err := pgbouncerPool(100, 8); err != nil || got != 91 {
		t.Errorf("pgbouncerPool(100, 8) = %d, %v; want 91", got, err)
	}
	if _, err := pgbouncerPool(10, 8); err == nil {
		t.Errorf("pgbouncerPool(10, 8): no error for a PgBouncer with 1 server connection")
	}
	if minConns(3) != 3 || minConns(64) != 10 {
		t.Errorf("minConns: %d %d", minConns(3), minConns(64))
	}
}
