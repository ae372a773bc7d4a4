package infra

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// Images built FROM scratch from this machine's PostgreSQL and Redis (the
// testcontainers mode's fallback when no public image can be had): a
// recipe per kind (the server, its libraries and share files, a user, the
// entrypoint), built through the engine (imagebuild.go).

// recipeVersion changes whenever what buildHostImage puts in an image
// changes, so images built by an older lab are rebuilt.
const recipeVersion = "1"

// hostUID is the unprivileged user of the images built here.
const hostUID = 999

// imageRecipe is everything an image built here is made of.
type imageRecipe struct {
	kind       string
	version    string   // the server's version, for the tag
	tag        string   // hal9-lab/<kind>:<version>-<hash>
	root       *rootfs  // files owned by root
	owned      []string // empty directories owned by the image's user
	dockerfile string
}

// hostRecipe describes the image of kind made from this machine's server.
func hostRecipe(kind string, opts ImageOptions) (*imageRecipe, error) {
	switch kind {
	case "postgres":
		return postgresRecipe(opts.PostgresBinDir)
	case "redis":
		return redisRecipe(opts.RedisServer)
	}
	return nil, fmt.Errorf("unknown image kind %q", kind)
}

func passwdFiles(r *rootfs, user, home string) {
	r.addData("/etc/passwd", []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:%s:/sbin/nologin\n", user, hostUID, hostUID, user, home)), 0o644)
	r.addData("/etc/group", []byte(fmt.Sprintf("root:x:0:\n%s:x:%d:\n", user, hostUID)), 0o644)
	r.addDir("/tmp", 0o777|fs.ModeSticky)
}

// postgresRecipe: postgres and initdb with their libraries, every module of
// the package library directory (plpgsql, the snowball dictionaries behind
// to_tsvector('english'), the encoding conversions) with theirs, the share
// directory initdb reads, the time-zone data, a postgres user, and the
// entrypoint that runs initdb at first start. LLVM JIT is left out (jit=off).
func postgresRecipe(binDir string) (*imageRecipe, error) {
	initdb, postgres, err := findPostgres(binDir)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(postgres, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("postgres image: %s --version: %w", postgres, err)
	}
	version := regexp.MustCompile(`\d+(\.\d+)+|\d+`).FindString(string(out))
	if version == "" {
		return nil, fmt.Errorf("postgres image: no version in %q", strings.TrimSpace(string(out)))
	}
	realPostgres, err := filepath.EvalSymlinks(postgres)
	if err != nil {
		return nil, fmt.Errorf("postgres image: %w", err)
	}
	realBin := filepath.Dir(realPostgres) // initdb and postgres may be symlinks on PATH
	pgRoot := filepath.Dir(realBin)
	major := strings.Split(version, ".")[0]
	libDir := firstDir(func(d string) bool { return fileExists(filepath.Join(d, "plpgsql.so")) },
		filepath.Join(pgRoot, "lib"), filepath.Join(pgRoot, "lib", "postgresql"), "/usr/lib/postgresql/"+major+"/lib")
	if libDir == "" {
		return nil, fmt.Errorf("postgres image: plpgsql.so not found next to %s (looked in %s/lib and %s/lib/postgresql); %s", realBin, pgRoot, pgRoot, pgInstallHint)
	}
	shareDir := firstDir(func(d string) bool { return fileExists(filepath.Join(d, "postgres.bki")) },
		"/usr/share/postgresql/"+major, filepath.Join(pgRoot, "share"), filepath.Join(pgRoot, "share", "postgresql"))
	if shareDir == "" {
		return nil, fmt.Errorf("postgres image: postgres.bki not found (looked in /usr/share/postgresql/%s and under %s/share); %s", major, pgRoot, pgInstallHint)
	}
	root := newRootfs()
	for _, b := range []string{postgres, initdb} {
		if err := root.addELF(b); err != nil {
			return nil, fmt.Errorf("postgres image: %w", err)
		}
	}
	// initdb starts its helper commands (postgres -V, the bootstrap
	// backend) with popen, which runs /bin/sh: the image needs one, though
	// nothing else in it is a shell script.
	if err := root.addELF("/bin/sh"); err != nil {
		return nil, fmt.Errorf("postgres image: initdb needs /bin/sh: %w", err)
	}
	mods, _ := filepath.Glob(filepath.Join(libDir, "*.so"))
	sort.Strings(mods)
	for _, m := range mods {
		if strings.HasPrefix(filepath.Base(m), "llvmjit") {
			continue // pulls in all of LLVM; the images run with jit=off
		}
		if err := root.addELF(m); err != nil {
			return nil, fmt.Errorf("postgres image: module %w", err)
		}
	}
	skipDocs := func(rel string, d fs.DirEntry) bool { return d.IsDir() && (rel == "man" || rel == "doc") }
	if err := root.addHostTree(shareDir, skipDocs); err != nil {
		return nil, fmt.Errorf("postgres image: %w", err)
	}
	if fileExists("/usr/share/zoneinfo/UTC") {
		skipRight := func(rel string, d fs.DirEntry) bool { return d.IsDir() && rel == "right" }
		if err := root.addHostTree("/usr/share/zoneinfo", skipRight); err != nil {
			return nil, fmt.Errorf("postgres image: %w", err)
		}
	}
	passwdFiles(root, "postgres", "/var/lib/postgresql")
	env := map[string]string{
		"PATH":             realBin + ":/usr/bin:/bin",
		"LD_LIBRARY_PATH":  strings.Join(root.libDirs, ":"),
		"PGDATA":           "/var/lib/postgresql/data",
		"TZ":               "UTC",
		"HAL9_INITDB_ARGS": strings.Join(initdbArgs, " "),
		"HAL9_PG_TEMPLATE": pgTemplateDir,
	}
	return newRecipe(imageSpec{
		kind: "postgres", version: version, root: root, env: env,
		owned: []string{"/var/lib/postgresql", "/var/run/postgresql", pgTemplateDir},
		// initdb once, at build time: a first start copies the cluster.
		run:  [][]string{{entrypointPath, "initdb", pgTemplateDir}},
		cmd:  []string{"postgres", "-c", "jit=off", "-c", "unix_socket_directories=/var/run/postgresql"},
		port: 5432, stopSignal: "SIGINT", workdir: "/var/lib/postgresql",
	})
}

// pgTemplateDir holds the cluster initdb made when the image was built;
// outside /var/lib/postgresql, which a tmpfs covers at run time.
const pgTemplateDir = "/var/lib/hal9-pgtemplate"

// redisRecipe: redis-server with its libraries and a redis user.
func redisRecipe(bin string) (*imageRecipe, error) {
	server, err := findRedis(bin)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(server, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("redis image: %s --version: %w", server, err)
	}
	m := regexp.MustCompile(`v=(\d+(\.\d+)*)`).FindStringSubmatch(string(out))
	if m == nil {
		return nil, fmt.Errorf("redis image: no version in %q", strings.TrimSpace(string(out)))
	}
	root := newRootfs()
	if err := root.addELF(server); err != nil {
		return nil, fmt.Errorf("redis image: %w", err)
	}
	passwdFiles(root, "redis", "/data")
	return newRecipe(imageSpec{
		kind: "redis", version: m[1], root: root, owned: []string{"/data"},
		env: map[string]string{
			"PATH":            filepath.Dir(server) + ":/usr/bin:/bin",
			"LD_LIBRARY_PATH": strings.Join(root.libDirs, ":"),
		},
		cmd:  []string{filepath.Base(server), "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"},
		port: 6379, stopSignal: "SIGTERM", workdir: "/data",
	})
}

// entrypointPath is where the entrypoint goes in the images built here.
const entrypointPath = "/usr/local/bin/hal9-entrypoint"

// imageSpec is what newRecipe turns into a Dockerfile.
type imageSpec struct {
	kind, version string
	root          *rootfs
	owned         []string          // empty directories owned by the user
	env           map[string]string // set before run
	run           [][]string        // RUN steps (exec form: there is no shell), as the user
	cmd           []string
	port          int
	stopSignal    string
	workdir       string
}

func newRecipe(s imageSpec) (*imageRecipe, error) {
	var df strings.Builder
	df.WriteString("FROM scratch\nCOPY rootfs/ /\n")
	for i, d := range s.owned {
		// One COPY per directory: --chown then applies to it, not to its parents.
		fmt.Fprintf(&df, "COPY --chown=%d:%d owned/%d %s\n", hostUID, hostUID, i, d)
	}
	keys := make([]string, 0, len(s.env))
	for k := range s.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&df, "ENV %s=%s\n", k, strconvQuote(s.env[k]))
	}
	fmt.Fprintf(&df, "USER %d:%d\nWORKDIR %s\n", hostUID, hostUID, s.workdir)
	for _, r := range s.run {
		fmt.Fprintf(&df, "RUN [%s]\n", quoteList(r))
	}
	fmt.Fprintf(&df, "EXPOSE %d\nSTOPSIGNAL %s\n", s.port, s.stopSignal)
	fmt.Fprintf(&df, "ENTRYPOINT [%s]\nCMD [%s]\n", strconvQuote(entrypointPath), quoteList(s.cmd))
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\n%s\n%s\n", recipeVersion, df.String(), s.root.digest())
	h.Write(entrypointSource)
	sum := hex.EncodeToString(h.Sum(nil))[:12]
	return &imageRecipe{
		kind: s.kind, version: s.version, tag: fmt.Sprintf("hal9-lab/%s:%s-%s", s.kind, s.version, sum),
		root: s.root, owned: s.owned, dockerfile: df.String(),
	}, nil
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconvQuote(s)
	}
	return strings.Join(q, ", ")
}

func firstDir(ok func(string) bool, dirs ...string) string {
	for _, d := range dirs {
		if ok(d) {
			return d
		}
	}
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// buildHostImage builds the recipe's image through the engine API (a tar
// build context: Dockerfile, rootfs/, owned/), unless another process
// built it meanwhile: builds are serialised per machine by a lock file.
func buildHostImage(ctx context.Context, cli *client.Client, r *imageRecipe, log *slog.Logger) error {
	unlock, err := lockFile(ctx, "image-build.lock")
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := cli.ImageInspect(ctx, r.tag); err == nil {
		return nil // built by someone else while we waited
	}
	begin := time.Now()
	tmp, err := os.MkdirTemp("", "hal9-entrypoint-")
	if err != nil {
		return fmt.Errorf("build image %s: %w", r.tag, err)
	}
	defer os.RemoveAll(tmp)
	entry, err := buildEntrypoint(ctx, tmp)
	if err != nil {
		return fmt.Errorf("build image %s: %w", r.tag, err)
	}
	if err := r.root.addHostFileAs(entrypointPath, entry, 0o755); err != nil {
		return fmt.Errorf("build image %s: %w", r.tag, err)
	}
	labels := map[string]string{LabelImage: r.kind, LabelRecipe: recipeVersion, "org.hal9-lab.version": r.version}
	err = buildImage(ctx, cli, r.tag, labels, func(tw *tar.Writer) error {
		if err := addTarFile(tw, "Dockerfile", []byte(r.dockerfile), 0o644); err != nil {
			return err
		}
		if err := r.root.writeTar(tw, "rootfs"); err != nil {
			return err
		}
		for i := range r.owned {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("owned/%d/", i), Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				return err
			}
		}
		return nil
	}, log)
	if err != nil {
		return err
	}
	log.Info("infra: image built from this machine's "+r.kind, "image", r.tag,
		"files", len(r.root.entries), "mb", r.root.size()>>20, "took", time.Since(begin).Round(time.Millisecond))
	for _, t := range pruneImages(ctx, cli, LabelImage+"="+r.kind, "hal9-lab/"+r.kind+":", map[string]bool{r.tag: true}, 0) {
		log.Info("infra: removed an older image built here", "image", t)
	}
	return nil
}
