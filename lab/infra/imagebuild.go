package infra

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"
)

// Building images through the engine API: a tar build context sent as it
// is written, builds serialised per machine by a lock file, older images
// of a kind pruned. The host images (hostimages.go) and the server image
// the lab builds for --server container (lab/build) both use it.

// buildImage sends a build context written by write to the engine and
// tags the result; the engine's output goes to debug logs.
func buildImage(ctx context.Context, cli *client.Client, tag string, labels map[string]string, write func(*tar.Writer) error, log *slog.Logger) error {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := write(tw)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	resp, err := cli.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Tags: []string{tag}, Labels: labels, Remove: true, ForceRemove: true, Dockerfile: "Dockerfile",
	})
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer resp.Body.Close()
	var tail []string
	err = readJSONStream(resp.Body, nil, func(l string) {
		log.Debug("infra: build "+tag, "out", l)
		tail = append(tail, l)
		if len(tail) > 10 {
			tail = tail[1:]
		}
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w\n%s", tag, err, strings.Join(tail, "\n"))
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("build image %s: the engine reported success but has no such image: %w\n%s", tag, err, strings.Join(tail, "\n"))
	}
	return nil
}

func addTarFile(tw *tar.Writer, name string, data []byte, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// pruneImages removes the images labelled label (label or label=value)
// whose tags start with prefix, but the tags in keep and the others
// newest of the rest (another lab may be running them); an image a
// container uses stays (the engine refuses). Best effort: it returns the
// tags it removed.
func pruneImages(ctx context.Context, cli *client.Client, label, prefix string, keep map[string]bool, others int) []string {
	list, err := cli.ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("label", label)})
	if err != nil {
		return nil
	}
	items := list.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Created > items[j].Created })
	var removed []string
	for _, img := range items {
		if slices.ContainsFunc(img.RepoTags, func(t string) bool { return keep[t] }) {
			continue
		}
		if others > 0 {
			others--
			continue
		}
		for _, t := range img.RepoTags {
			if !strings.HasPrefix(t, prefix) {
				continue
			}
			if _, err := cli.ImageRemove(ctx, t, client.ImageRemoveOptions{PruneChildren: true}); err == nil {
				removed = append(removed, t)
			}
		}
	}
	return removed
}

// PruneImages is pruneImages on the session's engine.
func (s *ContainerSession) PruneImages(ctx context.Context, label, prefix string, keep map[string]bool, others int) []string {
	return pruneImages(ctx, s.cli, label, prefix, keep, others)
}

// lockFile takes an exclusive lock on name in the user's cache directory
// (hal9-lab/), waiting while ctx allows.
func lockFile(ctx context.Context, name string) (func(), error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "hal9-lab")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// BuildFromDir builds an image through the engine API from a Dockerfile and
// a context directory (sent as it is: modes kept, owner root), and tags it:
// `hal9-lab infra images --server`, which `make image` runs on bin/image/.
func BuildFromDir(ctx context.Context, dockerfile, contextDir, tag string, labels map[string]string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cli, err := newEngine(ctx, log)
	if err != nil {
		return err
	}
	defer cli.Close()
	return buildFromDir(ctx, cli, dockerfile, contextDir, tag, labels, log)
}

func buildFromDir(ctx context.Context, cli *client.Client, dockerfile, contextDir, tag string, labels map[string]string, log *slog.Logger) error {
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	if st, err := os.Stat(contextDir); err != nil || !st.IsDir() {
		return fmt.Errorf("build image %s: context %s is not a directory", tag, contextDir)
	}
	return buildImage(ctx, cli, tag, labels, func(tw *tar.Writer) error { return writeContext(tw, df, contextDir, true) }, log)
}

// ContextDigest is the SHA-256 of the build context BuildFromDir would
// send (the Dockerfile, then every path, mode and content under dir), but
// without file times: a context staged again from the same files has the
// same digest, one file changed gives another.
func ContextDigest(dockerfile, dir string) (string, error) {
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return "", fmt.Errorf("hash the image context: %w", err)
	}
	h := sha256.New()
	tw := tar.NewWriter(h)
	if err := writeContext(tw, df, dir, false); err != nil {
		return "", fmt.Errorf("hash the image context %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("hash the image context %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeContext writes a build context: the Dockerfile, then the tree
// under dir with names relative to it, owned by root; times kept only
// when stamped.
func writeContext(tw *tar.Writer, dockerfile []byte, dir string, stamped bool) error {
	if err := addTarFile(tw, "Dockerfile", dockerfile, 0o644); err != nil {
		return err
	}
	return tarDir(tw, dir, stamped)
}

// tarDir writes the tree under dir with names relative to it.
func tarDir(tw *tar.Writer, dir string, stamped bool) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		if rel == "Dockerfile" {
			return fmt.Errorf("context %s has its own Dockerfile; remove it", dir)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if !stamped {
			hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
}
