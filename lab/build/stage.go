package build

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hal9-lab/hal9-lab/lab/infra"
)

// The server's image (Dockerfile at the repository root, FROM scratch):
// Stage fills its build context, for `make image` (through
// `hal9-lab infra images --server`) and for the lab's --server container,
// which builds an image of the very binary it runs, tagged by the
// context's content so that a rebuilt binary gets a new image and an
// unchanged one is reused.

// StageOptions say what goes in the server image's build context.
type StageOptions struct {
	Root string // the repository: ./cmd/hal9 and ./cmd/hal9-lab are built there
	Dir  string // the context directory, emptied and filled
	// Version is the server's -X main.version ("" : git describe, else dev).
	Version string
	// HalBin is a static server binary to use instead of building one.
	HalBin string
	// WithLab adds hal9-lab (the Kubernetes load jobs run it from the
	// image); the lab's own images hold the server only.
	WithLab bool
}

// Stage writes the build context of the server's image into
// o.Dir: bin/hal9 (and bin/hal9-lab) built with CGO_ENABLED=0, -trimpath,
// -s -w; etc/passwd and etc/group with the user hal9 (65532); the host's
// CA certificates (an empty file when it has none); /data and /tmp.
func Stage(ctx context.Context, o StageOptions) error {
	if o.Dir == "" {
		return errors.New("stage the server image: no context directory")
	}
	if err := os.RemoveAll(o.Dir); err != nil {
		return fmt.Errorf("stage the server image: %w", err)
	}
	for _, d := range []string{"bin", "etc/ssl/certs", "data", "tmp"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return fmt.Errorf("stage the server image: %w", err)
		}
	}
	if err := os.Chmod(filepath.Join(o.Dir, "tmp"), 0o777|fs.ModeSticky); err != nil {
		return fmt.Errorf("stage the server image: %w", err)
	}
	if o.HalBin != "" {
		if err := CheckStatic(o.HalBin); err != nil {
			return err
		}
		if err := infra.CopyFile(o.HalBin, filepath.Join(o.Dir, "bin", "hal9"), 0o755); err != nil {
			return fmt.Errorf("stage the server image: %w", err)
		}
	} else {
		v := o.Version
		if v == "" {
			v = GitDescribe(o.Root)
		}
		if err := goBuild(ctx, o.Root, "./cmd/hal9", filepath.Join(o.Dir, "bin", "hal9"), "-trimpath", "-ldflags", "-s -w -X main.version="+v); err != nil {
			return err
		}
	}
	if o.WithLab {
		if err := goBuild(ctx, o.Root, "./cmd/hal9-lab", filepath.Join(o.Dir, "bin", "hal9-lab"), "-trimpath", "-ldflags", "-s -w"); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\nhal9:x:65532:65532:hal9:/data:/sbin/nologin\n",
		"etc/group":  "root:x:0:\nhal9:x:65532:\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(o.Dir, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("stage the server image: %w", err)
		}
	}
	certs := filepath.Join(o.Dir, "etc/ssl/certs/ca-certificates.crt")
	if err := infra.CopyFile("/etc/ssl/certs/ca-certificates.crt", certs, 0o644); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stage the server image: %w", err)
		}
		if err := os.WriteFile(certs, nil, 0o644); err != nil {
			return fmt.Errorf("stage the server image: %w", err)
		}
	}
	return nil
}

// CheckStatic refuses a binary that needs a dynamic loader: the image has
// none (FROM scratch).
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("server binary %s: not an ELF executable (%v): the server image runs a static Linux binary: build it with CGO_ENABLED=0 go build -o bin/hal9 ./cmd/hal9", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("server binary %s is dynamically linked; the server image is FROM scratch, without a loader or libc: build it with CGO_ENABLED=0 go build -o bin/hal9 ./cmd/hal9", path)
		}
	}
	return nil
}
