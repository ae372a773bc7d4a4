// Package buildtest hands tests the server binary (./cmd/hal9, built by
// lab/build as the lab builds it), built once per test binary. Packages
// that use it remove the binary after their tests with
//
//	func TestMain(m *testing.M) { buildtest.Main(m) }
package buildtest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/build"
)

// The binary of this test binary: building the server takes tens of
// seconds, so every test of the package shares one.
var (
	once sync.Once
	dir  string
	err  error
)

// Server returns ./cmd/hal9 of the module at root, built once; a build
// that fails fails the test.
func Server(t testing.TB, root string) string {
	t.Helper()
	once.Do(func() {
		if dir, err = os.MkdirTemp("", "hal9lab-test-bin-"); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		err = build.Server(ctx, root, filepath.Join(dir, "hal9"))
	})
	if err != nil {
		t.Fatalf("build the server: %v", err)
	}
	return filepath.Join(dir, "hal9")
}

// Main runs the tests, then removes the binary.
func Main(m *testing.M) {
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}
