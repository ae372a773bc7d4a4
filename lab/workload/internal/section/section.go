// Package section decodes a workload's section of a scenario file (the
// map under workload:) strictly into its Config, and locates its keys
// (file:line) for the Config's validation errors.
package section

import (
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

// Normalizer validates a decoded config and fills its defaults; its
// errors name the file and line through pos.
type Normalizer interface {
	Normalize(pos Pos) error
}

// Pos locates keys of the workload section for error messages.
type Pos struct {
	File string
	Node *yaml.Node // the workload mapping; nil when built from Go
}

// Has reports whether the workload section sets key (explicit zeros are
// then errors rather than "use the default").
func (p Pos) Has(key string) bool {
	if p.Node == nil || p.Node.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(p.Node.Content); i += 2 {
		if p.Node.Content[i].Value == key {
			return true
		}
	}
	return false
}

// HasPath reports whether the workload section sets the nested key at
// path (catalogue.size_per_layer).
func (p Pos) HasPath(path ...string) bool {
	n := p.Node
	for _, k := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return false
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n != nil
}

// At returns "file:line" of the value at path under the workload section
// (map keys, or decimal indexes into sequences), the closest enclosing
// line when the key is absent, or just the file when there is no node.
func (p Pos) At(path ...string) string {
	n := p.Node
	if n == nil {
		return p.File
	}
	line := n.Line
	for _, k := range path {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			break
		}
		n, line = next, next.Line
	}
	return fmt.Sprintf("%s:%d", p.File, line)
}

// Decode reads the workload section of a scenario file strictly (unknown
// keys are errors) into a T and validates it (hal9 and http share this).
func Decode[T any, PT interface {
	*T
	Normalizer
}](spec load.WorkloadSpec) (T, error) {
	var c T
	if spec.Node != nil {
		if err := load.DecodeStrict(spec.File, spec.Node, "workload", &c); err != nil {
			return c, err
		}
	}
	return c, PT(&c).Normalize(Pos{File: spec.File, Node: spec.Node})
}
