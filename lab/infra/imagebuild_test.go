package infra

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestContextDigest: the digest follows the context's names, modes and
// contents, not its files' times; the stamped context BuildFromDir sends
// keeps them.
func TestContextDigest(t *testing.T) {
	stage := func(data string, mode os.FileMode) (string, string) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
		os.WriteFile(filepath.Join(dir, "bin", "hal9"), []byte(data), mode)
		df := filepath.Join(t.TempDir(), "Dockerfile")
		os.WriteFile(df, []byte("FROM scratch\nCOPY . /\n"), 0o644)
		return df, dir
	}
	digest := func(df, dir string) string {
		d, err := ContextDigest(df, dir)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	df, dir := stage("binary", 0o755)
	first := digest(df, dir)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, "bin", "hal9"), old, old)
	if digest(df, dir) != first {
		t.Error("a file's time changed the digest: every staging would build a new image")
	}
	if again := digest(stage("binary", 0o755)); again != first {
		t.Error("the same context staged again has another digest")
	}
	if digest(stage("binary2", 0o755)) == first || digest(stage("binary", 0o644)) == first {
		t.Error("another content or mode, the same digest")
	}
	os.WriteFile(filepath.Join(dir, "Dockerfile"), nil, 0o644)
	if _, err := ContextDigest(df, dir); err == nil {
		t.Error("a context with its own Dockerfile was hashed")
	}
	os.Remove(filepath.Join(dir, "Dockerfile"))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := writeContext(tw, []byte("FROM scratch\n"), dir, true); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	tr := tar.NewReader(&buf)
	names := map[string]time.Time{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = h.ModTime
	}
	if _, ok := names["Dockerfile"]; !ok {
		t.Errorf("the sent context has no Dockerfile: %v", names)
	}
	if d := names["bin/hal9"].Sub(old); d < -time.Second || d > time.Second {
		t.Errorf("the sent context: %v (want bin/hal9 with its time %v)", names, old)
	}
}
