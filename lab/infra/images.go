package infra

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// Public images the testcontainers mode prefers, when the engine has them
// or can pull them. Overridden by HAL9_PG_IMAGE / HAL9_REDIS_IMAGE (and
// `hal9-lab infra` flags); the value "host" skips them and uses the images
// built from this machine's servers.
const (
	DefaultPostgresImage = "postgres:15"
	DefaultRedisImage    = "redis:7"
	EnvPostgresImage     = "HAL9_PG_IMAGE"
	EnvRedisImage        = "HAL9_REDIS_IMAGE"
	// ImageHost names the images built from the host's own servers.
	ImageHost = "host"
)

// recipeVersion changes whenever what buildHostImage puts in an image
// changes, so images built by an older lab are rebuilt.
const recipeVersion = "1"

// hostUID is the unprivileged user of the images built here.
const hostUID = 999

// ImageOptions says which images to use.
type ImageOptions struct {
	// PostgresImage, RedisImage: a public image to prefer ("" = the
	// variable, else the default), or ImageHost.
	PostgresImage, RedisImage string
	// PullIdle aborts a pull that reports no progress for this long
	// (no registry reachable: fail fast). Zero: 15s.
	PullIdle time.Duration
	// PostgresBinDir, RedisServer locate the host's servers for the
	// images built here (see ProcessOptions).
	PostgresBinDir, RedisServer string
	// Rebuild builds the host images even when the current one exists.
	Rebuild bool
}

func (o ImageOptions) postgresRef() string {
	return firstNonEmpty(o.PostgresImage, os.Getenv(EnvPostgresImage), DefaultPostgresImage)
}

func (o ImageOptions) redisRef() string {
	return firstNonEmpty(o.RedisImage, os.Getenv(EnvRedisImage), DefaultRedisImage)
}

func (o ImageOptions) pullIdle() time.Duration {
	if o.PullIdle > 0 {
		return o.PullIdle
	}
	return 15 * time.Second
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x = strings.TrimSpace(x); x != "" {
			return x
		}
	}
	return ""
}

// Image is an image the lab runs, and where it came from.
type Image struct {
	Kind   string // postgres or redis
	Ref    string // what to run: postgres:15, hal9-lab/postgres:15.20-<hash>
	Source string // "present", "pulled", "built", "built before"
	Host   bool   // built from this machine's servers (our entrypoint, our paths)
	Took   time.Duration
}

// ResolveImage finds the image of kind ("postgres" or "redis") in this
// order: the public image when the engine has it; the host-built image of
// the servers installed here when it was built before; the public image
// pulled (aborted after PullIdle without progress); the host-built image,
// built now. With ref ImageHost the public image is not considered.
func ResolveImage(ctx context.Context, cli *client.Client, kind string, opts ImageOptions, log *slog.Logger) (*Image, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	begin := time.Now()
	var ref string
	switch kind {
	case "postgres":
		ref = opts.postgresRef()
	case "redis":
		ref = opts.redisRef()
	default:
		return nil, fmt.Errorf("unknown image kind %q: postgres or redis", kind)
	}
	public := ref != ImageHost
	if public && !opts.Rebuild {
		if _, err := cli.ImageInspect(ctx, ref); err == nil {
			return &Image{Kind: kind, Ref: ref, Source: "present", Took: time.Since(begin)}, nil
		}
	}
	recipe, err := hostRecipe(kind, opts)
	if err != nil {
		if !public {
			return nil, err
		}
		recipe = nil // no host servers: the public image is the only way
	}
	if recipe != nil && !opts.Rebuild {
		if _, err := cli.ImageInspect(ctx, recipe.tag); err == nil {
			return &Image{Kind: kind, Ref: recipe.tag, Source: "built before", Host: true, Took: time.Since(begin)}, nil
		}
	}
	var pullErr error
	if public && !opts.Rebuild {
		if pullErr = pullImage(ctx, cli, ref, opts.pullIdle()); pullErr == nil {
			log.Info("infra: image pulled", "image", ref, "took", time.Since(begin).Round(time.Millisecond))
			return &Image{Kind: kind, Ref: ref, Source: "pulled", Took: time.Since(begin)}, nil
		}
		log.Info("infra: image cannot be pulled; building one from this machine's "+kind, "image", ref, "err", pullErr)
	}
	if recipe == nil {
		return nil, fmt.Errorf("image %s: not present, pull failed (%v), and no local %s to build one from: %w", ref, pullErr, kind, err)
	}
	if err := buildHostImage(ctx, cli, recipe, log); err != nil {
		return nil, err
	}
	return &Image{Kind: kind, Ref: recipe.tag, Source: "built", Host: true, Took: time.Since(begin)}, nil
}

// pullImage pulls ref, giving up when the engine reports nothing for idle
// (an unreachable registry can otherwise hang in DNS or TCP).
func pullImage(ctx context.Context, cli *client.Client, ref string, idle time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(idle, cancel)
	defer timer.Stop()
	resp, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull %s: no answer within %v", ref, idle)
		}
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer resp.Close()
	err = readJSONStream(resp, func() { timer.Reset(idle) }, nil)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("pull %s: no progress for %v", ref, idle)
	}
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// readJSONStream reads the engine's progress messages (pull, build) until
// the end, returning the first error message; tick is called on each
// message, line (when not nil) with each build output line.
func readJSONStream(r io.Reader, tick func(), line func(string)) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if tick != nil {
			tick()
		}
		if m.Error != nil {
			return errors.New(strings.TrimSpace(m.Error.Message))
		}
		if line != nil && strings.TrimSpace(m.Stream) != "" {
			line(strings.TrimSpace(m.Stream))
		}
	}
}

// ---- images built from the host's servers ----

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
	pruneHostImages(ctx, cli, r.kind, r.tag, log)
	return nil
}

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

// pruneHostImages removes older images of kind built here (another host
// version or recipe); one in use by a container stays. Best effort.
func pruneHostImages(ctx context.Context, cli *client.Client, kind, keep string, log *slog.Logger) {
	list, err := cli.ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("label", LabelImage+"="+kind)})
	if err != nil {
		return
	}
	for _, img := range list.Items {
		for _, t := range img.RepoTags {
			if t == keep || !strings.HasPrefix(t, "hal9-lab/"+kind+":") {
				continue
			}
			if _, err := cli.ImageRemove(ctx, t, client.ImageRemoveOptions{PruneChildren: true}); err == nil {
				log.Info("infra: removed an older image built here", "image", t)
			}
		}
	}
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

// EnsureImages resolves the images of kinds ("postgres", "redis") on the
// engine testcontainers finds, building them from this machine's servers
// when needed (see ResolveImage): `hal9-lab infra images`.
func EnsureImages(ctx context.Context, kinds []string, opts ImageOptions, log *slog.Logger) ([]*Image, error) {
	cli, err := newEngine(ctx, log)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var imgs []*Image
	for _, k := range kinds {
		img, err := ResolveImage(ctx, cli, k, opts, log)
		if err != nil {
			return imgs, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
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
	return buildImage(ctx, cli, tag, labels, func(tw *tar.Writer) error {
		if err := addTarFile(tw, "Dockerfile", df, 0o644); err != nil {
			return err
		}
		return tarDir(tw, contextDir)
	}, log)
}

// tarDir writes the tree under dir with names relative to it.
func tarDir(tw *tar.Writer, dir string) error {
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
