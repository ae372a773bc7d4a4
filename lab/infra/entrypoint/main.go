// Command entrypoint is PID 1 of the images lab/infra builds FROM scratch
// out of the host's PostgreSQL and Redis: there is no shell in them, so
// the first-start work a shell script would do is done here. It uses the
// standard library only and is built with CGO_ENABLED=0 by lab/infra,
// which embeds this file (see entrypoint.go there).
//
//	entrypoint postgres [ARGS...]      when $PGDATA holds no cluster: copy the one the image
//	                                   was built with ($HAL9_PG_TEMPLATE), else run initdb;
//	                                   open pg_hba to the container's networks; exec postgres
//	entrypoint initdb DIR              make that template at build time (a RUN step)
//	entrypoint PROGRAM [ARGS...]       exec PROGRAM, looked up in $PATH
//	entrypoint -c ... (first arg "-")  same as "entrypoint postgres -c ..."
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Environment the image sets (lab/infra writes it into the Dockerfile).
const (
	envData       = "PGDATA"           // the cluster directory
	envInitdbArgs = "HAL9_INITDB_ARGS" // initdb's flags after -D, space separated
	envTemplate   = "HAL9_PG_TEMPLATE" // a cluster made at build time, copied at first start
)

// hbaMarker starts the block this program rewrites at every start.
const hbaMarker = "# hal9-lab entrypoint: the container's networks"

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "entrypoint:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New("no command: give one, e.g. postgres or redis-server")
	}
	if strings.HasPrefix(args[0], "-") {
		args = append([]string{"postgres"}, args...)
	}
	if args[0] == "initdb" {
		if len(args) != 2 {
			return errors.New("usage: entrypoint initdb DIR")
		}
		return ensureCluster(args[1], "", strings.Fields(getenv(envInitdbArgs)))
	}
	if filepath.Base(args[0]) == "postgres" {
		data := getenv(envData)
		if data == "" {
			return fmt.Errorf("%s is not set", envData)
		}
		if err := ensureCluster(data, getenv(envTemplate), strings.Fields(getenv(envInitdbArgs))); err != nil {
			return err
		}
		nets, err := localNetworks()
		if err != nil {
			return err
		}
		if err := writeHBA(filepath.Join(data, "pg_hba.conf"), nets); err != nil {
			return err
		}
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return fmt.Errorf("find %s: %w", args[0], err)
	}
	// exec: the server becomes PID 1 and gets the container's signals.
	return syscall.Exec(path, args, os.Environ())
}

// ensureCluster makes a cluster in data when it holds none yet (first
// start, or an empty volume): a copy of template when that holds one
// (initdb costs seconds of CPU, the copy a fraction of one), else initdb,
// which then also makes the server listen on every address.
func ensureCluster(data, template string, initdbArgs []string) error {
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return nil
	}
	if template != "" {
		if _, err := os.Stat(filepath.Join(template, "PG_VERSION")); err == nil {
			if err := copyTree(template, data); err != nil {
				return fmt.Errorf("copy the cluster template %s to %s: %w", template, data, err)
			}
			return nil
		}
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", data, err)
	}
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		return fmt.Errorf("find initdb: %w", err)
	}
	cmd := exec.Command(initdb, append([]string{"-D", data}, initdbArgs...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, "listen_addresses = '*'")
	return errors.Join(err, f.Close())
}

// copyTree copies a tree of directories and plain files, keeping their
// permission bits; dst's parent must exist, dst itself must not, or be
// empty. lab/infra has its own copyTree: this program builds alone, from
// this one file, and cannot import it.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
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
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil && !(rel == "." && os.IsExist(err)) {
				return err
			}
			return os.Chmod(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		}
		return fmt.Errorf("%s: not a plain file or directory", p)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
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

// localNetworks lists the IP networks of the container's interfaces other
// than loopback: the Docker networks it is attached to, from which the
// host (through the published port) and the other containers connect.
func localNetworks() ([]string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var nets []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		n := &net.IPNet{IP: ipn.IP.Mask(ipn.Mask), Mask: ipn.Mask}
		nets = append(nets, n.String())
	}
	return nets, nil
}

// writeHBA replaces the block after hbaMarker (or appends one) with trust
// lines for nets: the cluster is a throwaway lab server reachable only on
// the container's networks and on the host's loopback.
func writeHBA(path string, nets []string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	base := string(b)
	if i := strings.Index(base, hbaMarker); i >= 0 {
		base = base[:i]
	}
	if !strings.HasSuffix(base, "\n") {
		base += "\n"
	}
	var sb strings.Builder
	sb.WriteString(base + hbaMarker + "\n")
	for _, n := range nets {
		fmt.Fprintf(&sb, "host all all %s trust\n", n)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(sb.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
