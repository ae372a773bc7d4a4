package build_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/build/buildtest"
	"github.com/hal9-lab/hal9-lab/lab/infra"
)

// root is the repository root (tests run in lab/build).
const root = "../.."

func TestMain(m *testing.M) { buildtest.Main(m) }

// serverBin is ./cmd/hal9 built by build.Server (through buildtest).
func serverBin(t *testing.T) string { return buildtest.Server(t, root) }

// TestStageServerImage: the lab's context holds the static server, the
// unprivileged user and a sticky /tmp; its hash is stable and follows the
// binary; a dynamic binary is refused.
func TestStageServerImage(t *testing.T) {
	bin := serverBin(t)
	r := root
	ctx := context.Background()
	stage := func(bin string) (string, string) {
		dir := filepath.Join(t.TempDir(), "ctx")
		if err := build.Stage(ctx, build.StageOptions{Root: r, Dir: dir, HalBin: bin}); err != nil {
			t.Fatal(err)
		}
		sum, err := infra.ContextDigest(filepath.Join(r, "Dockerfile"), dir)
		if err != nil {
			t.Fatal(err)
		}
		return dir, sum
	}
	dir, sum := stage(bin)
	for _, f := range []string{"bin/hal9", "etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bin/hal9-lab")); err == nil {
		t.Error("the lab's image context holds hal9-lab; only make image's should")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/passwd")); !strings.Contains(string(b), "hal9:x:65532:65532:") {
		t.Errorf("passwd: %s", b)
	}
	if st, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || st.Mode()&os.ModeSticky == 0 || st.Mode().Perm() != 0o777 {
		t.Errorf("tmp: %v %v, want drwxrwxrwt", st.Mode(), err)
	}
	if _, again := stage(bin); again != sum {
		t.Errorf("the same binary hashed %s then %s", sum, again)
	}
	other := filepath.Join(t.TempDir(), "hal9")
	b, _ := os.ReadFile(bin)
	if err := os.WriteFile(other, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, changed := stage(other); changed == sum {
		t.Error("another binary, the same hash: a rebuilt server would run the old image")
	}
	if err := build.CheckStatic(bin); err != nil {
		t.Errorf("CheckStatic(the lab's build) = %v", err)
	}
	if _, err := os.Stat("/bin/sh"); err == nil { // a C program: a loader and libc
		if err := build.CheckStatic("/bin/sh"); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
			t.Errorf("CheckStatic(/bin/sh) = %v, want it refused", err)
		}
	}
	if err := build.CheckStatic(filepath.Join(dir, "etc/passwd")); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("CheckStatic(passwd) = %v", err)
	}
}

// TestAtRefErrors: a ref that is no commit is refused before any worktree
// is made, saying how to get it.
func TestAtRefErrors(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "hal9")
	if err := build.AtRef(ctx, root, "--upload-pack=x", out); err == nil || !strings.Contains(err.Error(), "not a git ref") {
		t.Errorf("an option as a ref: %v", err)
	}
	if err := build.AtRef(ctx, root, "no-such-branch-of-hal9", out); err == nil || !strings.Contains(err.Error(), "fetch it first") {
		t.Errorf("an unknown ref: %v", err)
	}
}

// TestServerBuildError: a failed build says what it ran and where.
func TestServerBuildError(t *testing.T) {
	err := build.Server(context.Background(), t.TempDir(), filepath.Join(t.TempDir(), "hal9"))
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0 go build -o") || !strings.Contains(err.Error(), "./cmd/hal9") {
		t.Errorf("err = %v", err)
	}
}

func TestGitDescribe(t *testing.T) {
	if v := build.GitDescribe(t.TempDir()); v != "dev" {
		t.Errorf("outside git: %q, want dev", v)
	}
	if c := build.GitCommit(t.TempDir()); c != "" {
		t.Errorf("outside git: commit %q", c)
	}
}
