package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server/store/storetest"
)

func TestRetention(t *testing.T) {
	s := openURL(t, infratest.PostgresURL(t))
	storetest.Retention(t, s, s.ApplyRetention)
	parts, err := s.Partitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if j := strings.Join(parts, ","); strings.Contains(j, "signals_y2024m01") || strings.Contains(j, "signals_y2024m02") {
		t.Errorf("expired partitions left: %v", parts)
	}
}
