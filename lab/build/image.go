package build

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra"
)

// LabImagePrefix starts the tags of the images the lab builds for
// --server container: hal9-lab/hal9:lab-<12 hex of the context's digest>.
const LabImagePrefix = "hal9-lab/hal9:lab-"

// labelLabImage marks those images (to prune old ones).
const labelLabImage = "org.hal9-lab.lab-image"

// keepOtherImages is how many of the lab's older server images stay (other
// labs may be running them).
const keepOtherImages = 3

// Image is the server image a leg's containers run.
type Image struct {
	Ref    string
	Source string // "built" or "present"
	Took   time.Duration
}

// Images are the server images of one lab session: one per binary, built
// on first use, tagged by the content of its context so that a rebuilt
// binary gets a new image and an unchanged one is reused (also across
// runs). Safe for concurrent use.
type Images struct {
	Root     string                        // the repository: its Dockerfile
	Progress func(format string, a ...any) // progress lines; nil: none

	mu    sync.Mutex
	byBin map[string]*Image
}

// For returns the image of binary bin on sess's engine, building it when
// the engine does not have it.
func (im *Images) For(ctx context.Context, sess *infra.ContainerSession, bin string) (*Image, error) {
	im.mu.Lock()
	img := im.byBin[bin]
	im.mu.Unlock()
	if img != nil {
		return &Image{Ref: img.Ref, Source: "present"}, nil
	}
	begin := time.Now()
	dir, err := os.MkdirTemp("", "hal9-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	dockerfile := filepath.Join(im.Root, "Dockerfile")
	if err := Stage(ctx, StageOptions{Root: im.Root, Dir: dir, HalBin: bin}); err != nil {
		return nil, err
	}
	sum, err := infra.ContextDigest(dockerfile, dir)
	if err != nil {
		return nil, err
	}
	img = &Image{Ref: LabImagePrefix + sum[:12], Source: "present"}
	if _, err := sess.Engine().ImageInspect(ctx, img.Ref); err != nil {
		im.progress("building the server image %s from %s", img.Ref, bin)
		labels := map[string]string{labelLabImage: "1", "org.opencontainers.image.title": "hal9", "org.opencontainers.image.version": GitDescribe(im.Root)}
		if err := sess.BuildFromDir(ctx, dockerfile, dir, img.Ref, labels); err != nil {
			return nil, err
		}
		img.Source = "built"
	}
	img.Took = time.Since(begin)
	im.mu.Lock()
	if im.byBin == nil {
		im.byBin = map[string]*Image{}
	}
	im.byBin[bin] = img
	keep := map[string]bool{}
	for _, i := range im.byBin {
		keep[i.Ref] = true
	}
	im.mu.Unlock()
	if img.Source == "built" {
		im.progress("server image %s built in %s", img.Ref, img.Took.Round(100*time.Millisecond))
		sess.PruneImages(ctx, labelLabImage, LabImagePrefix, keep, keepOtherImages)
	}
	return img, nil
}

func (im *Images) progress(format string, a ...any) {
	if im.Progress != nil {
		im.Progress(format, a...)
	}
}
