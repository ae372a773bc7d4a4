package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/hal9-lab/hal9-lab/server/store/storetest"
)

func TestRetention(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "hal9.db")).(*Store)
	storetest.Retention(t, s, s.ApplyRetention)
}
