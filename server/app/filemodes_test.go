package app

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDataDirMode: the data directory hal9 creates is its owner's only
// (0700), and so is the database in it (0600).
func TestDataDirMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "hal9")
	openApp(t, func(c *Config) { c.DataDir = dir })
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{filepath.Dir(dir), 0o700}, {dir, 0o700}, {filepath.Join(dir, "hal9.db"), 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != c.want {
			t.Errorf("%s: mode %o, want %o", c.path, m, c.want)
		}
	}
}
