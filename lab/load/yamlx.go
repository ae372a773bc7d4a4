package load

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FileError is a problem in a scenario file, at a line.
type FileError struct {
	File string
	Line int
	Path string // the key's path: scenarios.ramp.stages[1].duration
	Msg  string
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func nodeErr(file string, n *yaml.Node, path, format string, a ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &FileError{File: file, Line: line, Path: path, Msg: fmt.Sprintf(format, a...)}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return resolve(n.Content[0])
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// mapping walks a mapping node's keys in order.
func mapping(file string, n *yaml.Node, path string, fn func(key string, k, v *yaml.Node) error) error {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		got := "nothing"
		if n != nil {
			got = kindName(n)
		}
		return nodeErr(file, n, path, "want a mapping (key: value lines), got %s", got)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if seen[k.Value] {
			return nodeErr(file, k, join(path, k.Value), "duplicate key")
		}
		seen[k.Value] = true
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func scalarString(file string, n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", nodeErr(file, n, path, "want a string, got %s", kindName(n))
	}
	return n.Value, nil
}

func scalarDuration(file string, n *yaml.Node, path string) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, nodeErr(file, n, path, "want a duration like 30s or 1m30s, got %s", kindName(n))
	}
	if n.Value == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, nodeErr(file, n, path, "%q is not a duration; write e.g. 30s, 2m or 1m30s", n.Value)
	}
	if d < 0 {
		return 0, nodeErr(file, n, path, "duration %s must not be negative", n.Value)
	}
	return d, nil
}

func scalarInt(file string, n *yaml.Node, path string) (int, error) {
	var v int
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
		return 0, nodeErr(file, n, path, "want a whole number, got %s", kindName(n))
	}
	if v < 0 {
		return 0, nodeErr(file, n, path, "must not be negative, got %d", v)
	}
	return v, nil
}

func scalarFloat(file string, n *yaml.Node, path string) (float64, error) {
	var v float64
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
		return 0, nodeErr(file, n, path, "want a number, got %s", kindName(n))
	}
	if v < 0 || v != v {
		return 0, nodeErr(file, n, path, "must be a number ≥ 0, got %s", n.Value)
	}
	return v, nil
}

func scalarBool(file string, n *yaml.Node, path string) (bool, error) {
	var v bool
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
		return false, nodeErr(file, n, path, "want true or false, got %s", kindName(n))
	}
	return v, nil
}

// DecodeStrict decodes node into out (a pointer to a struct) like
// yaml.Node.Decode, but first rejects keys that out has no field for,
// naming the file, line and key path; decoding errors name the file too.
// Field names are the yaml tags (or the lowercased field name). Workload
// packages use it for their part of a scenario file.
func DecodeStrict(file string, n *yaml.Node, path string, out any) error {
	n = resolve(n)
	if n == nil {
		return nodeErr(file, nil, path, "missing")
	}
	if err := checkKeys(file, n, path, reflect.TypeOf(out)); err != nil {
		return err
	}
	if err := n.Decode(out); err != nil {
		msg := err.Error()
		if te, ok := err.(*yaml.TypeError); ok {
			msg = strings.Join(te.Errors, "; ")
		}
		return nodeErr(file, n, path, "%s", msg)
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func checkKeys(file string, n *yaml.Node, path string, t reflect.Type) error {
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nodeErr(file, n, path, "want a mapping (key: value lines), got %s", kindName(n))
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.ToLower(f.Name)
			if tag, ok := f.Tag.Lookup("yaml"); ok {
				tn, _, _ := strings.Cut(tag, ",")
				if tn == "-" {
					continue
				}
				if tn != "" {
					name = tn
				}
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		return mapping(file, n, path, func(key string, k, v *yaml.Node) error {
			ft, ok := fields[key]
			if !ok {
				return nodeErr(file, k, join(path, key), "unknown key (known keys here: %s)", strings.Join(names, ", "))
			}
			return checkKeys(file, v, join(path, key), ft)
		})
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, c := range n.Content {
				if err := checkKeys(file, c, fmt.Sprintf("%s[%d]", path, i), t.Elem()); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			return mapping(file, n, path, func(key string, _, v *yaml.Node) error {
				return checkKeys(file, v, join(path, key), t.Elem())
			})
		}
	}
	if t == durationType && n.Kind == yaml.ScalarNode {
		if _, err := time.ParseDuration(n.Value); err != nil && n.Value != "0" {
			return nodeErr(file, n, path, "%q is not a duration; write e.g. 1s or 250ms", n.Value)
		}
	}
	return nil
}
