package infra

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// entrypointSource is the program that starts the images built here (see
// entrypoint/main.go): standard library only, so it builds anywhere a Go
// toolchain is, without the module's dependencies or a network.
//
//go:embed entrypoint/main.go
var entrypointSource []byte

// buildEntrypoint compiles the entrypoint into dir as a static binary
// (CGO_ENABLED=0: the images have no C library of their own for it) and
// returns its path.
func buildEntrypoint(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if !isExecutable(goBin) {
			return "", fmt.Errorf("build the image entrypoint: the go command is not on PATH (a Go toolchain builds the images' tiny entrypoint; or set %s/%s to images you have)", EnvPostgresImage, EnvRedisImage)
		}
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hal9entrypoint\n\ngo 1.21\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), entrypointSource, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "hal9-entrypoint")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the image entrypoint (go build in %s): %w\n%s", src, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}
