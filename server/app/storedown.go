package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// explainStoreDown says what to do when the database does not answer at
// start. hal9 exits (status 1) rather than start degraded: with no schema
// check and no migration behind it, a degraded server could only answer
// 503 to everything, and a supervisor's restart with back-off (systemd
// Restart=on-failure, a Kubernetes pod) does the waiting better. Once it
// runs, a database that goes away is answered 503 + Retry-After and the
// pool reconnects by itself.
func explainStoreDown(raw string, err error) error {
	if !errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w\nthe database at %s does not answer. hal9 does not start without its database: start it (or fix --database-url / HAL9_DATABASE_URL) and start hal9 again; under a supervisor (systemd Restart=on-failure, Kubernetes) the restarts wait for it with back-off", err, redact.URL(raw))
}

// StoreCallTimeout bounds each store call a request makes (the signal
// save has the same 10 s of its own).
const StoreCallTimeout = 10 * time.Second
