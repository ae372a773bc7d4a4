package infra

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// rootfs is the file tree of an image built FROM scratch out of files of
// this machine. Host files keep their path in the image, and so do the
// symbolic links on the way to them (/lib -> usr/lib on a merged-/usr
// Debian), so binaries find their interpreter, libraries and share files
// exactly where they were built to look.
type rootfs struct {
	entries map[string]*rootfsEntry // image path (absolute, clean) -> entry
	libDirs []string                // directories libraries were found in, in order
	ld      *libResolver
}

type rootfsEntry struct {
	kind    byte   // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	src     string // host file whose content this is (regular files), or ""
	data    []byte // inline content when src is ""
	target  string // symlink target
	mode    fs.FileMode
	size    int64
	modTime int64 // host mtime (ns), part of the digest
}

func newRootfs() *rootfs {
	return &rootfs{entries: map[string]*rootfsEntry{}, ld: newLibResolver()}
}

// addDir adds an empty directory (and its parents).
func (r *rootfs) addDir(p string, mode fs.FileMode) {
	p = path.Clean("/" + p)
	r.parents(p)
	if _, ok := r.entries[p]; !ok {
		r.entries[p] = &rootfsEntry{kind: tar.TypeDir, mode: mode}
	}
}

// addData adds a file with the given content.
func (r *rootfs) addData(p string, data []byte, mode fs.FileMode) {
	p = path.Clean("/" + p)
	r.parents(p)
	r.entries[p] = &rootfsEntry{kind: tar.TypeReg, data: data, mode: mode, size: int64(len(data))}
}

// addHostFile adds a file from a host path to the image at the image path dst,
// following symbolic links (the image gets the content).
func (r *rootfs) addHostFileAs(dst, src string, mode fs.FileMode) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if mode == 0 {
		mode = st.Mode().Perm()
	}
	dst = path.Clean("/" + dst)
	r.parents(dst)
	r.entries[dst] = &rootfsEntry{kind: tar.TypeReg, src: src, mode: mode, size: st.Size(), modTime: st.ModTime().UnixNano()}
	return nil
}

func (r *rootfs) parents(p string) {
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if _, ok := r.entries[d]; ok {
			return // its parents were added with it
		}
		r.entries[d] = &rootfsEntry{kind: tar.TypeDir, mode: 0o755}
	}
}

// addHostPath adds the host path p at the same image path, component by
// component: a symlink on the way is added as the same symlink and
// followed, so the image resolves p as the host does. Directories are
// added empty; use addHostTree for their content.
func (r *rootfs) addHostPath(p string) error {
	return r.addHostPathDepth(p, 0)
}

func (r *rootfs) addHostPathDepth(p string, depth int) error {
	if depth > 40 {
		return fmt.Errorf("%s: too many levels of symbolic links", p)
	}
	p = filepath.Clean(p)
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%s: not an absolute path", p)
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i, part := range parts {
		next := filepath.Join(cur, part)
		st, err := os.Lstat(next)
		if err != nil {
			return err
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			r.parents(next)
			r.entries[next] = &rootfsEntry{kind: tar.TypeSymlink, target: target, mode: 0o777}
			resolved := target
			if !filepath.IsAbs(target) {
				resolved = filepath.Join(cur, target)
			}
			rest := filepath.Join(append([]string{resolved}, parts[i+1:]...)...)
			return r.addHostPathDepth(rest, depth+1)
		case i == len(parts)-1 && st.Mode().IsRegular():
			return r.addHostFileAs(next, next, 0)
		case st.IsDir():
			if e, ok := r.entries[next]; !ok || e.kind == tar.TypeDir {
				r.parents(next)
				r.entries[next] = &rootfsEntry{kind: tar.TypeDir, mode: st.Mode().Perm()}
			}
		default:
			return fmt.Errorf("%s: not a file, directory or symbolic link", next)
		}
		cur = next
	}
	return nil
}

// addHostTree adds the directory dir and everything under it. Symlinks
// inside are kept as they are (and not followed); skip, when not nil,
// leaves out entries (and, for directories, what is under them).
func (r *rootfs) addHostTree(dir string, skip func(rel string, d fs.DirEntry) bool) error {
	if err := r.addHostPath(dir); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	return filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(real, p)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			r.entries[p] = &rootfsEntry{kind: tar.TypeSymlink, target: target, mode: 0o777}
		case d.IsDir():
			r.entries[p] = &rootfsEntry{kind: tar.TypeDir, mode: info.Mode().Perm()}
		case info.Mode().IsRegular():
			r.entries[p] = &rootfsEntry{kind: tar.TypeReg, src: p, mode: info.Mode().Perm(), size: info.Size(), modTime: info.ModTime().UnixNano()}
		}
		return nil
	})
}

// addELF adds an executable or shared object and, transitively, its program
// interpreter and every library it needs (DT_NEEDED), found the way the
// dynamic loader finds them (RPATH/RUNPATH, /etc/ld.so.conf, the default
// directories).
func (r *rootfs) addELF(p string) error {
	seen := map[string]bool{}
	var walk func(file string) error
	walk = func(file string) error {
		if seen[file] {
			return nil
		}
		seen[file] = true
		if err := r.addHostPath(file); err != nil {
			return err
		}
		info, err := readELF(file)
		if err != nil {
			return err
		}
		if info.interp != "" {
			if err := walk(info.interp); err != nil {
				return fmt.Errorf("%s: interpreter: %w", file, err)
			}
		}
		for _, lib := range info.needed {
			found, err := r.ld.find(lib, file, info)
			if err != nil {
				return err
			}
			r.noteLibDir(filepath.Dir(found))
			if err := walk(found); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(p)
}

func (r *rootfs) noteLibDir(d string) {
	for _, x := range r.libDirs {
		if x == d {
			return
		}
	}
	r.libDirs = append(r.libDirs, d)
}

// paths lists the image paths in tar order (a directory before what is in it).
func (r *rootfs) paths() []string {
	ps := make([]string, 0, len(r.entries))
	for p := range r.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// digest identifies the content: every path with its kind, mode, link
// target and the identity of its source (size and mtime of the host file,
// or the inline bytes). Any change on the host gives another digest.
func (r *rootfs) digest() string {
	h := sha256.New()
	for _, p := range r.paths() {
		e := r.entries[p]
		fmt.Fprintf(h, "%s\x00%c\x00%o\x00%s\x00%d\x00%d\x00", p, e.kind, e.mode, e.target, e.size, e.modTime)
		h.Write(e.data)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// size is the total of the regular files' sizes.
func (r *rootfs) size() int64 {
	var n int64
	for _, e := range r.entries {
		n += e.size
	}
	return n
}

// writeTar writes the entries under prefix (e.g. "rootfs") to tw.
// Ownership is root's: Docker's COPY sets it anyway.
func (r *rootfs) writeTar(tw *tar.Writer, prefix string) error {
	for _, p := range r.paths() {
		e := r.entries[p]
		name := path.Join(prefix, strings.TrimPrefix(p, "/"))
		hdr := &tar.Header{Name: name, Mode: int64(e.mode & 0o7777), Typeflag: e.kind, Format: tar.FormatPAX}
		if e.mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch e.kind {
		case tar.TypeDir:
			hdr.Name += "/"
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			hdr.Linkname = e.target
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := r.writeFile(tw, hdr, e); err != nil {
				return fmt.Errorf("add %s: %w", p, err)
			}
		}
	}
	return nil
}

func (r *rootfs) writeFile(tw *tar.Writer, hdr *tar.Header, e *rootfsEntry) error {
	if e.src == "" {
		hdr.Size = int64(len(e.data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(e.data)
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != e.size {
		return fmt.Errorf("%s changed while the image was being built (size %d, was %d)", e.src, st.Size(), e.size)
	}
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// ---- shared-library lookup ----

type elfInfo struct {
	class          elf.Class
	machine        elf.Machine
	interp         string
	needed         []string
	rpath, runpath []string
}

func readELF(p string) (*elfInfo, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read ELF %s: %w", p, err)
	}
	defer f.Close()
	info := &elfInfo{class: f.Class, machine: f.Machine}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				return nil, fmt.Errorf("read ELF %s: interpreter: %w", p, err)
			}
			info.interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if info.needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("read ELF %s: %w", p, err)
	}
	origin := filepath.Dir(p)
	expand := func(tag elf.DynTag) []string {
		vals, _ := f.DynString(tag)
		var dirs []string
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
				if d != "" {
					dirs = append(dirs, d)
				}
			}
		}
		return dirs
	}
	info.rpath, info.runpath = expand(elf.DT_RPATH), expand(elf.DT_RUNPATH)
	return info, nil
}

// libResolver finds a library by soname the way ld.so does, minus
// LD_LIBRARY_PATH (the image must not depend on our environment) and the
// cache (its content is what /etc/ld.so.conf lists).
type libResolver struct {
	confDirs []string
}

func newLibResolver() *libResolver {
	dirs := readLdSoConf("/etc/ld.so.conf", 0)
	dirs = append(dirs, "/lib", "/usr/lib", "/lib64", "/usr/lib64")
	return &libResolver{confDirs: dirs}
}

func (l *libResolver) find(soname, from string, by *elfInfo) (string, error) {
	if strings.Contains(soname, "/") {
		return soname, nil
	}
	var dirs []string
	if len(by.runpath) == 0 {
		dirs = append(dirs, by.rpath...)
	}
	dirs = append(dirs, by.runpath...)
	dirs = append(dirs, l.confDirs...)
	for _, d := range dirs {
		p := filepath.Join(d, soname)
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		ok := f.Class == by.class && f.Machine == by.machine
		f.Close()
		if ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s needs %s, which is in none of %s", from, soname, strings.Join(dirs, ", "))
}

// readLdSoConf returns the directories listed in an ld.so.conf file,
// following its include lines.
func readLdSoConf(file string, depth int) []string {
	if depth > 8 {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "include "):
			pattern := strings.TrimSpace(strings.TrimPrefix(line, "include "))
			if !filepath.IsAbs(pattern) {
				pattern = filepath.Join(filepath.Dir(file), pattern)
			}
			matches, _ := filepath.Glob(pattern)
			sort.Strings(matches)
			for _, m := range matches {
				dirs = append(dirs, readLdSoConf(m, depth+1)...)
			}
		default:
			dirs = append(dirs, line)
		}
	}
	return dirs
}

// errNotFound marks a host component (binary, directory) that is absent.
var errNotFound = errors.New("not found")
