package infra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// EnvInitdbCache set to "off" disables the initdb cache.
const EnvInitdbCache = "HAL9_PG_INITDB_CACHE"

// initdbArgs are initdb's flags after -D DIR; part of the cache key.
var initdbArgs = []string{"-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"}

// initCluster makes a fresh cluster in data. initdb costs about 1.5 s of
// CPU, paid by every test binary and every PostgresProcess; copying a
// cluster initialised once takes a small fraction of that. The copy lives
// in the user's cache directory (hal9-lab/pginit-<key>), keyed by the initdb
// binary (path, size, mtime), its flags and the user the server runs as, so
// an upgrade or another user never reuses it. It is written under a
// temporary name and renamed into place whole, so concurrent test binaries
// never see half of one. Any cache trouble falls back to plain initdb.
func (p *Process) initCluster(ctx context.Context, initdb, data string, noCache bool) (cached bool, err error) {
	noCache = noCache || strings.EqualFold(os.Getenv(EnvInitdbCache), "off")
	var tmpl string
	if !noCache {
		tmpl = p.templateDir(initdb)
	}
	if tmpl != "" {
		if _, err := os.Stat(filepath.Join(tmpl, "PG_VERSION")); err == nil {
			if err := copyTree(tmpl, data, p.cred); err == nil {
				return true, nil
			}
			p.log.Debug("infra: initdb cache unusable, running initdb", "cache", tmpl, "err", err)
			_ = os.RemoveAll(data)
		}
	}
	if err := p.runInitdb(ctx, initdb, data); err != nil {
		return false, err
	}
	if tmpl != "" {
		p.fillTemplate(data, tmpl)
	}
	return false, nil
}

func (p *Process) templateDir(initdb string) string {
	root, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	st, err := os.Stat(initdb)
	if err != nil {
		return ""
	}
	abs, _ := filepath.Abs(initdb)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s", abs, st.Size(), st.ModTime().UnixNano(), strings.Join(initdbArgs, " "))
	if p.cred != nil {
		fmt.Fprintf(h, "\x00uid=%d", p.cred.Uid)
	}
	return filepath.Join(root, "hal9-lab", "pginit-"+hex.EncodeToString(h.Sum(nil))[:16])
}

// fillTemplate stores a freshly initialised cluster as the cache; best
// effort, and the first writer wins.
func (p *Process) fillTemplate(data, tmpl string) {
	if err := os.MkdirAll(filepath.Dir(tmpl), 0o755); err != nil {
		return
	}
	tmp, err := os.MkdirTemp(filepath.Dir(tmpl), filepath.Base(tmpl)+".tmp-")
	if err != nil {
		return
	}
	defer os.RemoveAll(tmp) // after a successful rename there is nothing left
	dst := filepath.Join(tmp, "data")
	if err := copyTree(data, dst, nil); err != nil {
		p.log.Debug("infra: could not fill the initdb cache", "err", err)
		return
	}
	if err := os.Rename(dst, tmp+".ready"); err != nil {
		return
	}
	if err := os.Rename(tmp+".ready", tmpl); err != nil {
		_ = os.RemoveAll(tmp + ".ready") // someone else was first
		return
	}
	p.log.Debug("infra: initdb cache filled", "cache", tmpl)
}

// copyTree copies a directory of plain files and directories, keeping
// permission bits, and hands everything to cred's user when cred is set.
func copyTree(src, dst string, cred *syscall.Credential) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := CopyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("copy %s: not a plain file or directory", path)
		}
		if cred != nil {
			return os.Lchown(target, int(cred.Uid), int(cred.Gid))
		}
		return nil
	})
}

// CopyFile copies src to a new file dst (an existing dst is an error).
func CopyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
