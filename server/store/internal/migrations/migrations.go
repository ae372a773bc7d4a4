// Package migrations reads a dialect's embedded migration files; each store
// applies them in its own way (SQLite's write lock, PostgreSQL's advisory lock).
package migrations

import (
	"cmp"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one file, NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads dir/*.sql from fsys in version order. A file whose name does
// not start with a positive number and '_' is an error, as are two files
// with the same number.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var out []Migration
	seen := map[int]string{}
	for _, f := range files {
		base := path.Base(f)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_' (0002_add_x.sql)", f)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d: renumber one", other, base, v)
		}
		seen[v] = base
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", f, err)
		}
		out = append(out, Migration{Version: v, Name: base, SQL: string(body)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	return out, nil
}
