package infra

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// resolveIn follows p through the rootfs's own entries (its symlinks, not
// the host's) and returns the regular file or directory it ends at.
func resolveIn(t *testing.T, r *rootfs, p string) (string, *rootfsEntry) {
	t.Helper()
	for hops := 0; hops < 40; hops++ {
		parts := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
		cur := "/"
		redirected := false
		for i, part := range parts {
			next := path.Join(cur, part)
			e, ok := r.entries[next]
			if !ok {
				return next, nil
			}
			if e.kind == tar.TypeSymlink {
				target := e.target
				if !path.IsAbs(target) {
					target = path.Join(cur, target)
				}
				p = path.Join(append([]string{target}, parts[i+1:]...)...)
				redirected = true
				break
			}
			if i == len(parts)-1 {
				return next, e
			}
			cur = next
		}
		if !redirected {
			return p, nil
		}
	}
	t.Fatalf("symlink loop at %s", p)
	return "", nil
}

// checkClosure: every ELF file of the rootfs finds its interpreter and each
// library it needs inside the rootfs, in the directories the image's
// LD_LIBRARY_PATH lists (or its RUNPATH) — what ld.so will do in the image.
func checkClosure(t *testing.T, r *rootfs) (elfs int) {
	t.Helper()
	for p, e := range r.entries {
		if e.kind != tar.TypeReg || e.src == "" {
			continue
		}
		f, err := elf.Open(e.src)
		if err != nil {
			continue // not ELF
		}
		f.Close()
		elfs++
		info, err := readELF(e.src)
		if err != nil {
			t.Fatal(err)
		}
		if info.interp != "" {
			if _, ent := resolveIn(t, r, info.interp); ent == nil || ent.kind != tar.TypeReg {
				t.Errorf("%s: interpreter %s missing from the image", p, info.interp)
			}
		}
		for _, lib := range info.needed {
			found := false
			for _, d := range append(append([]string{}, info.runpath...), r.libDirs...) {
				if _, ent := resolveIn(t, r, path.Join(d, lib)); ent != nil && ent.kind == tar.TypeReg {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s needs %s: not in the image's library directories %v", p, lib, r.libDirs)
			}
		}
	}
	return elfs
}

func TestRootfsELFClosure(t *testing.T) {
	r := newRootfs()
	if err := r.addELF("/bin/sh"); err != nil {
		t.Fatal(err)
	}
	if n := checkClosure(t, r); n < 2 {
		t.Fatalf("%d ELF files for /bin/sh, want it and at least its C library", n)
	}
	if _, e := resolveIn(t, r, "/bin/sh"); e == nil || e.kind != tar.TypeReg {
		t.Fatal("/bin/sh does not resolve to a file inside the image")
	}
}

func TestRootfsMirrorsSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "usr", "lib")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "libx.so.1.2"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("usr/lib", filepath.Join(dir, "lib")))            // relative, like Debian's /lib
	must(os.Symlink("libx.so.1.2", filepath.Join(real, "libx.so.1"))) // soname link
	r := newRootfs()
	must(r.addHostPath(filepath.Join(dir, "lib", "libx.so.1")))
	for p, kind := range map[string]byte{
		filepath.Join(dir, "lib"):                     tar.TypeSymlink,
		filepath.Join(dir, "usr", "lib", "libx.so.1"): tar.TypeSymlink,
		filepath.Join(real, "libx.so.1.2"):            tar.TypeReg,
		filepath.Join(dir, "usr"):                     tar.TypeDir,
	} {
		if e := r.entries[p]; e == nil || e.kind != kind {
			t.Errorf("%s: entry %+v, want kind %c", p, e, kind)
		}
	}
	if _, e := resolveIn(t, r, filepath.Join(dir, "lib", "libx.so.1")); e == nil || e.kind != tar.TypeReg {
		t.Errorf("the host path does not resolve inside the image")
	}
	// The tar holds the same tree, under the prefix, with the content.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(r.writeTar(tw, "rootfs"))
	must(tw.Close())
	tr := tar.NewReader(&buf)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(h.Typeflag) + h.Linkname + string(b)
	}
	rel := strings.TrimPrefix(dir, "/")
	if got["rootfs/"+rel+"/lib"] != string(rune(tar.TypeSymlink))+"usr/lib" || got["rootfs/"+rel+"/usr/lib/libx.so.1.2"] != string(rune(tar.TypeReg))+"x" {
		t.Errorf("tar entries: %v", got)
	}
}

func TestRootfsDigest(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bin")
	if err := os.WriteFile(f, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	digest := func() string {
		r := newRootfs()
		if err := r.addHostPath(f); err != nil {
			t.Fatal(err)
		}
		return r.digest()
	}
	d1, d2 := digest(), digest()
	if d1 != d2 {
		t.Fatalf("digest not stable: %s %s", d1, d2)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(f, later, later); err != nil {
		t.Fatal(err)
	}
	if digest() == d1 {
		t.Fatal("digest unchanged after the host file changed")
	}
}

func TestReadLdSoConf(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "ld.so.conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ld.so.conf", "# comment\n/opt/a\ninclude ld.so.conf.d/*.conf\n")
	write("ld.so.conf.d/b.conf", "/opt/b # trailing\n")
	write("ld.so.conf.d/c.conf", "\n/opt/c\n")
	got := strings.Join(readLdSoConf(filepath.Join(dir, "ld.so.conf"), 0), " ")
	if got != "/opt/a /opt/b /opt/c" {
		t.Fatalf("dirs = %q", got)
	}
}

// TestHostRecipes: the images built from this machine's servers hold what
// they need at run time, not only what ldd of the binaries shows.
func TestHostRecipes(t *testing.T) {
	needProcess(t, "postgres")
	needProcess(t, "redis")
	pg, err := postgresRecipe("")
	if err != nil {
		t.Fatal(err)
	}
	has := func(r *rootfs, suffix string) bool {
		for p, e := range r.entries {
			if strings.HasSuffix(p, suffix) && e.kind == tar.TypeReg {
				return true
			}
		}
		return false
	}
	for _, want := range []string{
		"/plpgsql.so", "/dict_snowball.so", // loaded at run time: PL/pgSQL, to_tsvector('english')
		"/postgres.bki", "/tsearch_data/english.stop", // initdb's share files, the english stop words
		"/bin/initdb", "/bin/postgres", "/etc/passwd", "/etc/group",
	} {
		if !has(pg.root, want) {
			t.Errorf("postgres image lacks %s", want)
		}
	}
	if has(pg.root, "/llvmjit.so") {
		t.Error("postgres image carries LLVM JIT")
	}
	if _, e := resolveIn(t, pg.root, "/bin/sh"); e == nil {
		t.Error("postgres image has no /bin/sh for initdb's popen")
	}
	if _, e := resolveIn(t, pg.root, "/usr/share/zoneinfo/UTC"); e == nil && fileExists("/usr/share/zoneinfo/UTC") {
		t.Error("postgres image has no time zone UTC")
	}
	checkClosure(t, pg.root)
	if !strings.HasPrefix(pg.tag, "hal9-lab/postgres:") || !strings.Contains(pg.dockerfile, "USER 999:999") ||
		!strings.Contains(pg.dockerfile, `RUN ["/usr/local/bin/hal9-entrypoint", "initdb", "/var/lib/hal9-pgtemplate"]`) {
		t.Errorf("tag %s, Dockerfile:\n%s", pg.tag, pg.dockerfile)
	}
	again, err := postgresRecipe("")
	if err != nil || again.tag != pg.tag {
		t.Errorf("tag not stable: %s then %s (%v)", pg.tag, again.tag, err)
	}
	rd, err := redisRecipe("")
	if err != nil {
		t.Fatal(err)
	}
	checkClosure(t, rd.root)
	if !strings.HasPrefix(rd.tag, "hal9-lab/redis:") || !strings.Contains(rd.dockerfile, `"--protected-mode", "no"`) {
		t.Errorf("tag %s, Dockerfile:\n%s", rd.tag, rd.dockerfile)
	}
}
