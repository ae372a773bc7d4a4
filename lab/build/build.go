// Package build makes what the lab runs: the server binary (hal9 serve),
// the same at another git ref (the gate's reference), the server image's
// build context and, for --server container, the server image of the very
// binary a leg runs. Everything is built with CGO_ENABLED=0: SQLite is
// pure Go, and the image is FROM scratch, without a loader or libc.
package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Server builds the server binary from the module at root into out,
// statically, so that the same binary runs as a process and in the
// server's image (--server container).
func Server(ctx context.Context, root, out string) error {
	return goBuild(ctx, root, "./cmd/hal9", out)
}

// goBuild builds pkg of the module at root into out without cgo.
func goBuild(ctx context.Context, root, pkg, out string, flags ...string) error {
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("CGO_ENABLED=0 go %s (in %s): %w\n%s", strings.Join(args, " "), root, err, b)
	}
	return nil
}

// AtRef builds ./cmd/hal9 as it is at ref into out, in a temporary git
// worktree (removed afterwards), so the working tree is untouched.
func AtRef(ctx context.Context, root, ref, out string) error {
	if strings.HasPrefix(ref, "-") {
		return fmt.Errorf("--against %q: not a git ref", ref)
	}
	git := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		return cmd.CombinedOutput()
	}
	if b, err := git("rev-parse", "--verify", "--quiet", ref+"^{commit}"); err != nil {
		return fmt.Errorf("--against %s: not a commit in %s (%s): fetch it first (e.g. git fetch origin main)", ref, root, strings.TrimSpace(string(b)))
	}
	tmp, err := os.MkdirTemp("", "hal9lab-ref-")
	if err != nil {
		return fmt.Errorf("create worktree dir: %w", err)
	}
	wt := filepath.Join(tmp, "src")
	if b, err := git("worktree", "add", "--detach", wt, ref); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("git worktree add %s %s: %w\n%s", wt, ref, err, b)
	}
	defer func() {
		_, _ = git("worktree", "remove", "--force", wt)
		os.RemoveAll(tmp)
		_, _ = git("worktree", "prune")
	}()
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := Server(ctx, wt, abs); err != nil {
		return fmt.Errorf("build the reference at %s: %w", ref, err)
	}
	return nil
}

// GitCommit returns HEAD's hash at root, or "" (no git, no commits yet).
func GitCommit(root string) string {
	return git(root, "", "rev-parse", "HEAD")
}

// GitDescribe is `git describe --tags --always --dirty` at root (what
// `make image` tags with), or "dev".
func GitDescribe(root string) string {
	return git(root, "dev", "describe", "--tags", "--always", "--dirty")
}

// git runs a read-only git command at root: its trimmed output, or
// otherwise when it fails or prints nothing.
func git(root, otherwise string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return otherwise
}
