// Package kubernetes generates the files of deploy/kubernetes that are
// derived from the rest of the repository (the PrometheusRule from
// alerts/hal9.rules.yml, the dashboard ConfigMaps from dashboards/*.json,
// the scenario ConfigMap of the load-test Job from scenarios/*.yaml:
// kustomize cannot read files outside its root) and renders kustomizations
// with kustomize's own engine, the one `kubectl kustomize` embeds, for the
// tests and for hal9-lab's load-test launcher.
//
//	go run ./deploy/kubernetes/gen   (make manifests)
package kubernetes
