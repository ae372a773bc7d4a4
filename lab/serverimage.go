package lab

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/hal9-lab/hal9-lab/lab/infra"
)

// The server's image (Dockerfile at the repository root, FROM scratch):
// StageServerImage fills its build context, for `make image` (through
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

// Image's user and group (Dockerfile: USER 65532:65532).
const imageUID = 65532

// LabImagePrefix starts the tags of the images the lab builds for
// --server container: hal9-lab/hal9:lab-<12 hex of the context's hash>.
const LabImagePrefix = "hal9-lab/hal9:lab-"

// labelLabImage marks those images (to prune old ones).
const labelLabImage = "org.hal9-lab.lab-image"

// StageServerImage writes the build context of the server's image into
// o.Dir: bin/hal9 (and bin/hal9-lab) built with CGO_ENABLED=0, -trimpath,
// -s -w; etc/passwd and etc/group with the user hal9 (65532); the host's
// CA certificates (an empty file when it has none); /data and /tmp.
func StageServerImage(ctx context.Context, o StageOptions) error {
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
		if err := goBuildStatic(ctx, o.Root, "./cmd/hal9", filepath.Join(o.Dir, "bin", "hal9"), "-X main.version="+v); err != nil {
			return err
		}
	}
	if o.WithLab {
		if err := goBuildStatic(ctx, o.Root, "./cmd/hal9-lab", filepath.Join(o.Dir, "bin", "hal9-lab"), ""); err != nil {
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

// goBuildStatic builds pkg at root into out without cgo.
func goBuildStatic(ctx context.Context, root, pkg, out, ldflags string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", strings.TrimSpace("-s -w "+ldflags), "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("CGO_ENABLED=0 go build -o %s %s (in %s): %w\n%s", out, pkg, root, err, b)
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

// GitDescribe is `git describe --tags --always --dirty` at root (what
// `make image` tags with), or "dev".
func GitDescribe(root string) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}

// contextHash hashes a build context and its Dockerfile: every path, mode
// and content.
func contextHash(dockerfile, dir string) (string, error) {
	h := sha256.New()
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "Dockerfile %d\n", len(df))
	h.Write(df)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %v %d\n", filepath.ToSlash(rel), info.Mode(), info.Size())
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("hash the image context %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// serverImage is the image a leg's servers run.
type serverImage struct {
	ref    string
	source string // "built" or "present"
	took   time.Duration
}

// serverImage returns the image of binary bin on sess's engine, building
// it when the engine does not have it (once per binary and run).
func (s *Session) serverImage(ctx context.Context, sess *infra.ContainerSession, bin string) (*serverImage, error) {
	s.mu.Lock()
	img := s.images[bin]
	s.mu.Unlock()
	if img != nil {
		return &serverImage{ref: img.ref, source: "present"}, nil
	}
	begin := time.Now()
	dir, err := os.MkdirTemp("", "hal9-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	dockerfile := filepath.Join(s.opts.Root, "Dockerfile")
	if err := StageServerImage(ctx, StageOptions{Root: s.opts.Root, Dir: dir, HalBin: bin}); err != nil {
		return nil, err
	}
	sum, err := contextHash(dockerfile, dir)
	if err != nil {
		return nil, err
	}
	img = &serverImage{ref: LabImagePrefix + sum[:12], source: "present"}
	cli := sess.Engine()
	if _, err := cli.ImageInspect(ctx, img.ref); err != nil {
		s.prog.step("building the server image %s from %s", img.ref, bin)
		labels := map[string]string{labelLabImage: "1", "org.opencontainers.image.title": "hal9", "org.opencontainers.image.version": GitDescribe(s.opts.Root)}
		if err := sess.BuildFromDir(ctx, dockerfile, dir, img.ref, labels); err != nil {
			return nil, err
		}
		img.source = "built"
	}
	img.took = time.Since(begin)
	s.mu.Lock()
	if s.images == nil {
		s.images = map[string]*serverImage{}
	}
	s.images[bin] = img
	keep := map[string]bool{}
	for _, i := range s.images {
		keep[i.ref] = true
	}
	s.mu.Unlock()
	if img.source == "built" {
		s.prog.step("server image %s built in %s", img.ref, img.took.Round(100*time.Millisecond))
		pruneLabImages(ctx, cli, keep, 3)
	}
	return img, nil
}

// pruneLabImages removes the lab's server images but the ones in keep and
// the newest others (another lab may be running them); one a container
// uses stays. Best effort.
func pruneLabImages(ctx context.Context, cli *client.Client, keep map[string]bool, others int) {
	list, err := cli.ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("label", labelLabImage)})
	if err != nil {
		return
	}
	items := list.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Created > items[j].Created })
	for _, img := range items {
		var mine bool
		for _, t := range img.RepoTags {
			mine = mine || keep[t]
		}
		if mine {
			continue
		}
		if others > 0 {
			others--
			continue
		}
		for _, t := range img.RepoTags {
			if strings.HasPrefix(t, LabImagePrefix) {
				_, _ = cli.ImageRemove(ctx, t, client.ImageRemoveOptions{PruneChildren: true})
			}
		}
	}
}
