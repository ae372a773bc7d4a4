package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Object is one rendered Kubernetes object.
type Object struct {
	APIVersion, Kind, Namespace, Name string
	JSON                              []byte
}

// ID names the object for messages: Kind/namespace/name.
func (o Object) ID() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

// Render builds the kustomization in dir (on disk) with kustomize's engine,
// as `kubectl kustomize dir` does, and returns its objects in output order.
func Render(dir string) ([]Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var out []Object
	for _, r := range m.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %s: %w", dir, r.CurId(), err)
		}
		out = append(out, Object{
			APIVersion: r.GetApiVersion(), Kind: r.GetKind(),
			Namespace: r.GetNamespace(), Name: r.GetName(), JSON: b,
		})
	}
	return out, nil
}

// ParseYAML splits a multi-document YAML stream (kubectl kustomize's
// output) into objects.
func ParseYAML(b []byte) ([]Object, error) {
	var out []Object
	for i, doc := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name, Namespace string
			} `json:"metadata"`
		}
		if err := json.Unmarshal(j, &meta); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, Object{APIVersion: meta.APIVersion, Kind: meta.Kind,
			Namespace: meta.Metadata.Namespace, Name: meta.Metadata.Name, JSON: j})
	}
	return out, nil
}

// DecodeStrict decodes the object into v, refusing fields v's type does
// not have (a misspelt or misplaced field is an error, not silently lost
// as the API server's non-strict decoding would).
func DecodeStrict(o Object, v any) error {
	d := json.NewDecoder(bytes.NewReader(o.JSON))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", o.ID(), err)
	}
	return nil
}
