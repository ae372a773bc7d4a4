package kubernetes

import (
	"fmt"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// bundle is a rendered kustomization decoded strictly into Go types.
type bundle struct {
	namespaces   []*corev1.Namespace
	accounts     []*corev1.ServiceAccount
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	services     []*corev1.Service
	claims       []*corev1.PersistentVolumeClaim
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	jobs         []*batchv1.Job
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	policies     []*networkingv1.NetworkPolicy
	monitors     []*monitoringv1.ServiceMonitor
	rules        []*monitoringv1.PrometheusRule
}

// decodeAll decodes every object into the Go type of its apiVersion and
// kind, refusing unknown fields; an object of another kind is an error
// (add its type here).
func decodeAll(objs []Object) (*bundle, error) {
	b := &bundle{}
	for _, o := range objs {
		var v any
		want := ""
		switch o.Kind {
		case "Namespace":
			x := &corev1.Namespace{}
			b.namespaces, v, want = append(b.namespaces, x), x, "v1"
		case "ServiceAccount":
			x := &corev1.ServiceAccount{}
			b.accounts, v, want = append(b.accounts, x), x, "v1"
		case "ConfigMap":
			x := &corev1.ConfigMap{}
			b.configMaps, v, want = append(b.configMaps, x), x, "v1"
		case "Secret":
			x := &corev1.Secret{}
			b.secrets, v, want = append(b.secrets, x), x, "v1"
		case "Service":
			x := &corev1.Service{}
			b.services, v, want = append(b.services, x), x, "v1"
		case "PersistentVolumeClaim":
			x := &corev1.PersistentVolumeClaim{}
			b.claims, v, want = append(b.claims, x), x, "v1"
		case "Deployment":
			x := &appsv1.Deployment{}
			b.deployments, v, want = append(b.deployments, x), x, "apps/v1"
		case "StatefulSet":
			x := &appsv1.StatefulSet{}
			b.statefulSets, v, want = append(b.statefulSets, x), x, "apps/v1"
		case "Job":
			x := &batchv1.Job{}
			b.jobs, v, want = append(b.jobs, x), x, "batch/v1"
		case "HorizontalPodAutoscaler":
			x := &autoscalingv2.HorizontalPodAutoscaler{}
			b.hpas, v, want = append(b.hpas, x), x, "autoscaling/v2"
		case "PodDisruptionBudget":
			x := &policyv1.PodDisruptionBudget{}
			b.pdbs, v, want = append(b.pdbs, x), x, "policy/v1"
		case "NetworkPolicy":
			x := &networkingv1.NetworkPolicy{}
			b.policies, v, want = append(b.policies, x), x, "networking.k8s.io/v1"
		case "ServiceMonitor":
			x := &monitoringv1.ServiceMonitor{}
			b.monitors, v, want = append(b.monitors, x), x, "monitoring.coreos.com/v1"
		case "PrometheusRule":
			x := &monitoringv1.PrometheusRule{}
			b.rules, v, want = append(b.rules, x), x, "monitoring.coreos.com/v1"
		default:
			return nil, fmt.Errorf("%s: kind %s has no Go type in this test; add it to decodeAll", o.ID(), o.Kind)
		}
		if o.APIVersion != want {
			return nil, fmt.Errorf("%s: apiVersion %s, want %s", o.ID(), o.APIVersion, want)
		}
		if err := DecodeStrict(o, v); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// workload is a pod template and where it came from.
type workload struct {
	id       string
	ns       string
	labels   map[string]string
	spec     corev1.PodSpec
	claimTpl []string // StatefulSet volumeClaimTemplates
}

func (b *bundle) workloads() []workload {
	var out []workload
	for _, d := range b.deployments {
		out = append(out, workload{"Deployment/" + d.Name, d.Namespace, d.Spec.Template.Labels, d.Spec.Template.Spec, nil})
	}
	for _, s := range b.statefulSets {
		w := workload{"StatefulSet/" + s.Name, s.Namespace, s.Spec.Template.Labels, s.Spec.Template.Spec, nil}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claimTpl = append(w.claimTpl, c.Name)
		}
		out = append(out, w)
	}
	for _, j := range b.jobs {
		out = append(out, workload{"Job/" + j.Name, j.Namespace, j.Spec.Template.Labels, j.Spec.Template.Spec, nil})
	}
	return out
}

func (b *bundle) configMap(ns, name string) *corev1.ConfigMap {
	for _, c := range b.configMaps {
		if c.Namespace == ns && c.Name == name {
			return c
		}
	}
	return nil
}

func (b *bundle) secret(ns, name string) *corev1.Secret {
	for _, s := range b.secrets {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	return nil
}

func (b *bundle) claim(ns, name string) bool {
	for _, c := range b.claims {
		if c.Namespace == ns && c.Name == name {
			return true
		}
	}
	return false
}

func (b *bundle) deployment(name string) *appsv1.Deployment {
	for _, d := range b.deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// matches reports whether selector (matchLabels only, as ours are) selects labels.
func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// env resolves a container's environment as the kubelet would: envFrom
// ConfigMaps and Secrets, then env (which wins).
func (b *bundle) env(ns string, c corev1.Container) (map[string]string, error) {
	out := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := b.configMap(ns, ef.ConfigMapRef.Name)
			if cm == nil {
				return nil, fmt.Errorf("container %s: envFrom ConfigMap %s not rendered", c.Name, ef.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				out[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			s := b.secret(ns, ef.SecretRef.Name)
			if s == nil {
				return nil, fmt.Errorf("container %s: envFrom Secret %s not rendered", c.Name, ef.SecretRef.Name)
			}
			for k, v := range s.Data {
				out[ef.Prefix+k] = string(v)
			}
			for k, v := range s.StringData {
				out[ef.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			cm := b.configMap(ns, r.Name)
			if cm == nil {
				return nil, fmt.Errorf("container %s: env %s: ConfigMap %s not rendered", c.Name, e.Name, r.Name)
			}
			out[e.Name] = cm.Data[r.Key]
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			s := b.secret(ns, r.Name)
			if s == nil {
				return nil, fmt.Errorf("container %s: env %s: Secret %s not rendered", c.Name, e.Name, r.Name)
			}
			out[e.Name] = string(s.Data[r.Key])
		}
	}
	return out, nil
}

// checkReferences checks what the API server would accept but the cluster
// would then fail on: names that point nowhere.
func checkReferences(t *testing.T, b *bundle) {
	t.Helper()
	ws := b.workloads()
	for _, w := range ws {
		vols := map[string]bool{}
		for _, n := range w.claimTpl {
			vols[n] = true
		}
		for _, v := range w.spec.Volumes {
			vols[v.Name] = true
			switch {
			case v.ConfigMap != nil && b.configMap(w.ns, v.ConfigMap.Name) == nil:
				t.Errorf("%s: volume %s: ConfigMap %s not rendered", w.id, v.Name, v.ConfigMap.Name)
			case v.Secret != nil && b.secret(w.ns, v.Secret.SecretName) == nil:
				t.Errorf("%s: volume %s: Secret %s not rendered", w.id, v.Name, v.Secret.SecretName)
			case v.PersistentVolumeClaim != nil && !b.claim(w.ns, v.PersistentVolumeClaim.ClaimName):
				t.Errorf("%s: volume %s: claim %s not rendered", w.id, v.Name, v.PersistentVolumeClaim.ClaimName)
			case v.Projected != nil:
				for _, s := range v.Projected.Sources {
					if s.ConfigMap != nil && b.configMap(w.ns, s.ConfigMap.Name) == nil {
						t.Errorf("%s: volume %s: ConfigMap %s not rendered", w.id, v.Name, s.ConfigMap.Name)
					}
					if s.Secret != nil && b.secret(w.ns, s.Secret.Name) == nil {
						t.Errorf("%s: volume %s: Secret %s not rendered", w.id, v.Name, s.Secret.Name)
					}
				}
			}
		}
		if sc := w.spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: pod securityContext.runAsNonRoot is not true", w.id)
		}
		for _, c := range w.spec.Containers {
			if _, err := b.env(w.ns, c); err != nil {
				t.Errorf("%s: %v", w.id, err)
			}
			for _, m := range c.VolumeMounts {
				if !vols[m.Name] {
					t.Errorf("%s: container %s mounts volume %s, which the pod does not have", w.id, c.Name, m.Name)
				}
			}
			ports := map[string]bool{}
			for _, p := range c.Ports {
				ports[p.Name] = true
			}
			for what, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
				if p == nil {
					continue
				}
				var port intstr.IntOrString
				switch {
				case p.HTTPGet != nil:
					port = p.HTTPGet.Port
				case p.TCPSocket != nil:
					port = p.TCPSocket.Port
				default:
					continue
				}
				if port.Type == intstr.String && !ports[port.StrVal] {
					t.Errorf("%s: container %s: %s probe port %q is not a named container port", w.id, c.Name, what, port.StrVal)
				}
			}
			if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: container %s may escalate privileges (set allowPrivilegeEscalation: false)", w.id, c.Name)
			}
		}
	}
	selected := func(ns string, sel map[string]string) []workload {
		var out []workload
		for _, w := range ws {
			if w.ns == ns && matches(sel, w.labels) {
				out = append(out, w)
			}
		}
		return out
	}
	for _, s := range b.services {
		pods := selected(s.Namespace, s.Spec.Selector)
		if len(pods) == 0 {
			t.Errorf("Service %s selects no pods (%v)", s.Name, s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.IntValue() != 0 {
				continue
			}
			found := false
			for _, w := range pods {
				for _, c := range w.spec.Containers {
					for _, cp := range c.Ports {
						found = found || cp.Name == p.TargetPort.String()
					}
				}
			}
			if !found {
				t.Errorf("Service %s: targetPort %q is no container port of the pods it selects", s.Name, p.TargetPort.String())
			}
		}
	}
	for _, p := range b.pdbs {
		if p.Spec.Selector == nil || len(selected(p.Namespace, p.Spec.Selector.MatchLabels)) == 0 {
			t.Errorf("PodDisruptionBudget %s selects no pods", p.Name)
		}
	}
	for _, h := range b.hpas {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || b.deployment(h.Spec.ScaleTargetRef.Name) == nil {
			t.Errorf("HorizontalPodAutoscaler %s scales %s/%s, which is not rendered", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HorizontalPodAutoscaler %s: want 1 ≤ minReplicas ≤ maxReplicas (%d)", h.Name, h.Spec.MaxReplicas)
		}
	}
	for _, m := range b.monitors {
		var svc *corev1.Service
		for _, s := range b.services {
			if s.Namespace == m.Namespace && matches(m.Spec.Selector.MatchLabels, s.Labels) {
				svc = s
			}
		}
		if svc == nil {
			t.Errorf("ServiceMonitor %s selects no Service", m.Name)
			continue
		}
		if m.Spec.JobLabel != "" && svc.Labels[m.Spec.JobLabel] != "hal9" {
			t.Errorf("ServiceMonitor %s: job label from %s is %q; alerts/hal9.rules.yml expects job=\"hal9\"", m.Name, m.Spec.JobLabel, svc.Labels[m.Spec.JobLabel])
		}
		for _, e := range m.Spec.Endpoints {
			ok := false
			for _, p := range svc.Spec.Ports {
				ok = ok || p.Name == e.Port
			}
			if !ok {
				t.Errorf("ServiceMonitor %s: endpoint port %q is not a port of Service %s", m.Name, e.Port, svc.Name)
			}
		}
	}
	for _, np := range b.policies {
		if len(selected(np.Namespace, np.Spec.PodSelector.MatchLabels)) == 0 {
			t.Errorf("NetworkPolicy %s selects no pods", np.Name)
		}
	}
}
