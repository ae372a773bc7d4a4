package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/hal9-lab/hal9-lab/lab/prom"
)

const root = "../.."

func TestGeneratedFilesUpToDate(t *testing.T) {
	files, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	diffs, err := Diff(root, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("deploy/kubernetes's generated files are stale; run `make manifests`:\n  %s", strings.Join(diffs, "\n  "))
	}
}

// TestDiffSeesChanges makes sure the staleness test can fail.
func TestDiffSeesChanges(t *testing.T) {
	files, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := Write(tmp, files); err != nil {
		t.Fatal(err)
	}
	if d, _ := Diff(tmp, files); len(d) != 0 {
		t.Fatalf("fresh copy differs: %v", d)
	}
	p := MonitoringDir + "/prometheusrule.yaml"
	os.WriteFile(filepath.Join(tmp, p), []byte("edited by hand"), 0o644)
	os.WriteFile(filepath.Join(tmp, LoadtestDir, "scenarios", "old.yaml"), nil, 0o644)
	delete(files, LoadtestDir+"/kustomization.yaml")
	d, _ := Diff(tmp, files)
	want := []string{"differs: " + p, "not generated (stale): " + LoadtestDir + "/kustomization.yaml", "not generated (stale): " + LoadtestDir + "/scenarios/old.yaml"}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Diff = %q, want %q", d, want)
	}
}

// overlay writes a kustomization that builds on dirs (resources) and
// components, for combinations no directory ships.
func overlay(t *testing.T, namespace string, resources, components []string) string {
	t.Helper()
	dir := t.TempDir()
	// kustomize refuses absolute paths: relative ones from dir.
	rel := func(p string) string {
		a, err := filepath.Abs(p)
		if err == nil {
			p, err = filepath.Rel(dir, a)
		}
		if err != nil {
			t.Fatal(err)
		}
		return filepath.ToSlash(p)
	}
	var b strings.Builder
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: " + namespace + "\nresources:\n")
	for _, r := range resources {
		fmt.Fprintf(&b, "  - %s\n", rel(r))
	}
	if len(components) > 0 {
		b.WriteString("components:\n")
		for _, c := range components {
			fmt.Fprintf(&b, "  - %s\n", rel(c))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

type renderCase struct {
	name string
	dir  func(t *testing.T) string
	// seed: the prod shape (seed 000 resources, 30..150 replicas).
	seedResources bool
	minR, maxR    int32 // HPA bounds; 0: no HPA
	replicas      int32
	pgbouncer     bool
	monitoring    bool
	signalsHPA    bool
}

func renderCases() []renderCase {
	d := func(p string) func(*testing.T) string { return func(*testing.T) string { return p } }
	return []renderCase{
		{name: "base", dir: d("base"), seedResources: true, minR: 5, maxR: 50, replicas: 5},
		{name: "dev", dir: d("overlays/dev"), replicas: 1},
		{name: "prod", dir: d("overlays/prod"), seedResources: true, minR: 30, maxR: 150, replicas: 30, pgbouncer: true, monitoring: true},
		{name: "prod+signals-hpa", dir: func(t *testing.T) string {
			return overlay(t, "hal9", []string{"overlays/prod"}, []string{"components/signals-hpa"})
		}, seedResources: true, minR: 30, maxR: 150, replicas: 30, pgbouncer: true, monitoring: true, signalsHPA: true},
		{name: "dev+monitoring", dir: func(t *testing.T) string {
			return overlay(t, "hal9-dev", []string{"overlays/dev"}, []string{"components/monitoring"})
		}, replicas: 1, monitoring: true},
		{name: "loadtest", dir: d("loadtest")},
	}
}

func TestRender(t *testing.T) {
	for _, c := range renderCases() {
		t.Run(c.name, func(t *testing.T) {
			objs, err := Render(c.dir(t))
			if err != nil {
				t.Fatal(err)
			}
			b, err := decodeAll(objs)
			if err != nil {
				t.Fatal(err)
			}
			checkReferences(t, b)
			if c.name == "loadtest" {
				checkLoadtest(t, b)
				return
			}
			checkServer(t, b, c)
		})
	}
}

// hal9 returns the server's Deployment and container.
func hal9(t *testing.T, b *bundle) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d := b.deployment("hal9")
	if d == nil {
		t.Fatal("no Deployment hal9")
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "hal9" {
			return d, c
		}
	}
	t.Fatal("Deployment hal9 has no container hal9")
	return nil, corev1.Container{}
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// checkServer checks the server's objects against the server's own flags
// and routes (docs/server.md) and the seeds' numbers.
func checkServer(t *testing.T, b *bundle, c renderCase) {
	d, ctr := hal9(t, b)
	if want := []string{"/usr/local/bin/hal9", "serve"}; !reflect.DeepEqual(ctr.Command, want) {
		t.Errorf("command %q, want %q", ctr.Command, want)
	}
	if !strings.HasPrefix(ctr.Image, "hal9-lab/hal9:") {
		t.Errorf("image %q: want hal9-lab/hal9:<version> (kustomize images)", ctr.Image)
	}
	env, err := b.env(d.Namespace, ctr)
	if err != nil {
		t.Fatal(err)
	}
	// The listeners: every interface of the pod, on the ports the
	// container, the probes and the Service name.
	for envName, port := range map[string]string{"HAL9_ADDR": "http", "HAL9_ADMIN_ADDR": "admin"} {
		host, p, err := net.SplitHostPort(env[envName])
		if err != nil || host != "0.0.0.0" || p != strconv.Itoa(int(containerPort(ctr, port))) {
			t.Errorf("%s=%q: want 0.0.0.0:<container port %q = %d>", envName, env[envName], port, containerPort(ctr, port))
		}
	}
	for _, s := range b.services {
		if s.Name != "hal9" {
			continue
		}
		var names []string
		for _, p := range s.Spec.Ports {
			names = append(names, p.Name+"="+p.TargetPort.String())
		}
		sort.Strings(names)
		if want := []string{"admin=admin", "http=http"}; !reflect.DeepEqual(names, want) {
			t.Errorf("Service hal9 ports %v, want %v", names, want)
		}
	}
	// Probes on the routes that answer them: /readyz on the API listener,
	// /health on the admin listener (TestProbesAgainstServer asks the
	// real server).
	for what, p := range map[string]*corev1.Probe{"readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe, "startup": ctr.StartupProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet probe", what)
			continue
		}
		want := map[string]string{"readiness": "http /readyz", "liveness": "admin /health", "startup": "admin /health"}[what]
		if got := p.HTTPGet.Port.String() + " " + p.HTTPGet.Path; got != want {
			t.Errorf("%s probe on %q, want %q", what, got, want)
		}
	}
	// Seed 000: 60 s graceful shutdown, after the preStop pause.
	shutdown, err := time.ParseDuration(env["HAL9_SHUTDOWN_TIMEOUT"])
	if err != nil || shutdown != 60*time.Second {
		t.Errorf("HAL9_SHUTDOWN_TIMEOUT=%q, want 60s (seed 000)", env["HAL9_SHUTDOWN_TIMEOUT"])
	}
	var pause int64
	if l := ctr.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil || l.PreStop.Sleep.Seconds < 5 {
		t.Error("want a preStop sleep of at least 5 s (no shell in the image: lifecycle.preStop.sleep)")
	} else {
		pause = l.PreStop.Sleep.Seconds
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown+time.Duration(pause)*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v must exceed the preStop pause (%d s) + HAL9_SHUTDOWN_TIMEOUT (%s)", g, pause, shutdown)
	}
	// Read-only root; the data directory is a volume.
	if sc := ctr.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("want readOnlyRootFilesystem: true")
	}
	mounted := false
	for _, m := range ctr.VolumeMounts {
		mounted = mounted || m.MountPath == env["HAL9_DATA_DIR"]
	}
	if !mounted {
		t.Errorf("HAL9_DATA_DIR=%q is not a mounted volume (the root file system is read-only)", env["HAL9_DATA_DIR"])
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != c.replicas {
		t.Errorf("replicas %v, want %d", d.Spec.Replicas, c.replicas)
	}
	if c.seedResources {
		for what, want := range map[string]string{"requests.cpu": "1", "requests.memory": "2Gi", "limits.memory": "4Gi"} {
			list := ctr.Resources.Requests
			if strings.HasPrefix(what, "limits") {
				list = ctr.Resources.Limits
			}
			got := list[corev1.ResourceName(what[strings.IndexByte(what, '.')+1:])]
			if got.Cmp(resource.MustParse(want)) != 0 {
				t.Errorf("resources.%s = %s, want %s (seed 000)", what, got.String(), want)
			}
		}
	}
	checkHPA(t, b, c)
	if c.pgbouncer {
		u, err := url.Parse(strings.TrimPrefix(env["HAL9_DATABASE_URL"], "REPLACE_ME_"))
		if err != nil || u.Query().Get("default_query_exec_mode") != "exec" || u.Host != "hal9-pgbouncer:6432" {
			t.Errorf("HAL9_DATABASE_URL %q: want the PgBouncer Service (hal9-pgbouncer:6432) with default_query_exec_mode=exec", env["HAL9_DATABASE_URL"])
		}
		ini := ""
		for _, cm := range b.configMaps {
			ini += cm.Data["pgbouncer.ini"]
		}
		if !strings.Contains(ini, "\npool_mode = transaction\n") {
			t.Error("pgbouncer.ini: want pool_mode = transaction")
		}
	}
	checkMonitoring(t, b, c)
}

func checkHPA(t *testing.T, b *bundle, c renderCase) {
	t.Helper()
	if c.maxR == 0 {
		if len(b.hpas) > 0 {
			t.Errorf("%d HorizontalPodAutoscalers, want none", len(b.hpas))
		}
		return
	}
	if len(b.hpas) != 1 {
		t.Fatalf("%d HorizontalPodAutoscalers, want 1", len(b.hpas))
	}
	h := b.hpas[0]
	if *h.Spec.MinReplicas != c.minR || h.Spec.MaxReplicas != c.maxR {
		t.Errorf("HPA %d..%d, want %d..%d", *h.Spec.MinReplicas, h.Spec.MaxReplicas, c.minR, c.maxR)
	}
	got := map[string]string{}
	for _, m := range h.Spec.Metrics {
		switch {
		case m.Resource != nil && m.Resource.Target.AverageUtilization != nil:
			got[string(m.Resource.Name)] = strconv.Itoa(int(*m.Resource.Target.AverageUtilization)) + "%"
		case m.Pods != nil && m.Pods.Target.AverageValue != nil:
			got[m.Pods.Metric.Name] = m.Pods.Target.AverageValue.String()
		}
	}
	// Seed 004: CPU 50 %, memory 65 %, 30 signals/s per pod.
	want := map[string]string{"cpu": "50%", "memory": "65%"}
	if c.signalsHPA {
		want["hal9_signals_per_second"] = "30"
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("HPA metrics %v, want %v", got, want)
	}
}

func checkMonitoring(t *testing.T, b *bundle, c renderCase) {
	t.Helper()
	if !c.monitoring {
		if len(b.monitors)+len(b.rules) > 0 {
			t.Error("monitoring objects where none were asked for")
		}
		return
	}
	if len(b.monitors) != 1 || len(b.rules) != 1 {
		t.Fatalf("%d ServiceMonitors and %d PrometheusRules, want 1 and 1", len(b.monitors), len(b.rules))
	}
	if e := b.monitors[0].Spec.Endpoints; len(e) != 1 || e[0].Port != "admin" || e[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v: want port admin, path /metrics (the API port has no metrics)", e)
	}
	n := 0
	for _, g := range b.rules[0].Spec.Groups {
		n += len(g.Rules)
	}
	if n < 10 {
		t.Errorf("PrometheusRule has %d rules; alerts/hal9.rules.yml has more", n)
	}
	src, _ := filepath.Glob(filepath.Join(root, "dashboards", "*.json"))
	dashboards := 0
	for _, cm := range b.configMaps {
		if cm.Labels["grafana_dashboard"] != "1" {
			continue
		}
		dashboards++
		for k, v := range cm.Data {
			if !json.Valid([]byte(v)) {
				t.Errorf("ConfigMap %s: %s is not JSON", cm.Name, k)
			}
		}
	}
	if dashboards != len(src) || dashboards == 0 {
		t.Errorf("%d dashboard ConfigMaps, want one per dashboards/*.json (%d)", dashboards, len(src))
	}
}

func checkLoadtest(t *testing.T, b *bundle) {
	t.Helper()
	if len(b.jobs) != 2 || len(b.claims) != 1 {
		t.Fatalf("%d Jobs and %d claims, want 2 and 1", len(b.jobs), len(b.claims))
	}
	if m := b.claims[0].Spec.AccessModes; len(m) != 1 || m[0] != corev1.ReadWriteMany {
		t.Errorf("results claim access modes %v, want ReadWriteMany", m)
	}
	for _, j := range b.jobs {
		if j.Name == "hal9-loadtest" && (j.Spec.CompletionMode == nil || *j.Spec.CompletionMode != "Indexed") {
			t.Error("Job hal9-loadtest: want completionMode Indexed")
		}
	}
	// The scenarios ConfigMap holds every scenario file.
	src, _ := filepath.Glob(filepath.Join(root, "scenarios", "*.yaml"))
	for _, cm := range b.configMaps {
		if strings.HasPrefix(cm.Name, "hal9-scenarios") && len(cm.Data) != len(src) {
			t.Errorf("ConfigMap %s has %d scenarios, scenarios/ has %d", cm.Name, len(cm.Data), len(src))
		}
	}
}

// TestKubectlKustomizeAgrees renders every directory with `kubectl
// kustomize` too, when kubectl is installed, and requires the same objects.
// (Debian's kubernetes-client is 1.20, whose kustomize cannot build
// components: a fresh machine skips this and relies on TestRender, which
// uses the kustomize engine that kubectl embeds.)
func TestKubectlKustomizeAgrees(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; TestRender renders with kustomize's library")
	}
	for _, c := range renderCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := c.dir(t)
			out, err := exec.Command(kubectl, "kustomize", dir).Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
			}
			fromKubectl, err := ParseYAML(out)
			if err != nil {
				t.Fatal(err)
			}
			fromLib, err := Render(dir)
			if err != nil {
				t.Fatal(err)
			}
			byID := func(objs []Object) map[string]any {
				m := map[string]any{}
				for _, o := range objs {
					var v any
					if err := json.Unmarshal(o.JSON, &v); err != nil {
						t.Fatal(err)
					}
					m[o.ID()] = v
				}
				return m
			}
			a, b := byID(fromLib), byID(fromKubectl)
			for id, v := range a {
				w, ok := b[id]
				switch {
				case !ok:
					t.Errorf("%s: rendered by the library, not by kubectl kustomize", id)
				case !reflect.DeepEqual(v, w):
					t.Errorf("%s differs between the library and kubectl kustomize", id)
				}
			}
			for id := range b {
				if _, ok := a[id]; !ok {
					t.Errorf("%s: rendered by kubectl kustomize, not by the library", id)
				}
			}
		})
	}
}

// TestServerAcceptsManifests runs the real server with each overlay's
// environment: `hal9 config` must know every HAL9_* variable, refuse the
// placeholders of base and prod, and accept dev's; the probes' paths must
// answer 200 on the listeners the probes name.
func TestServerAcceptsManifests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "hal9")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/hal9")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hal9: %v\n%s", err, out)
	}
	envOf := func(t *testing.T, dir string) (map[string]string, corev1.Container) {
		objs, err := Render(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := decodeAll(objs)
		if err != nil {
			t.Fatal(err)
		}
		d, c := hal9(t, b)
		env, err := b.env(d.Namespace, c)
		if err != nil {
			t.Fatal(err)
		}
		return env, c
	}
	config := func(env map[string]string) (map[string]any, string, int) {
		cmd := exec.CommandContext(ctx, bin, "config")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		json.Unmarshal(stdout.Bytes(), &cfg)
		return cfg, stderr.String(), code
	}
	for _, dir := range []string{"base", "overlays/prod"} {
		t.Run(dir+" placeholders", func(t *testing.T) {
			env, _ := envOf(t, dir)
			_, stderr, code := config(env)
			if code != 2 {
				t.Fatalf("hal9 config with %s's placeholder secrets: exit %d, want 2 (refused)", dir, code)
			}
			for _, flag := range []string{"--database-url", "--redis-url", "--jwt-secret"} {
				if !strings.Contains(stderr, flag) {
					t.Errorf("the refusal does not name %s:\n%s", flag, stderr)
				}
			}
		})
	}
	env, ctr := envOf(t, "overlays/dev")
	cfg, stderr, code := config(env)
	if code != 0 {
		t.Fatalf("hal9 config with dev's environment: exit %d\n%s", code, stderr)
	}
	for k, v := range env {
		name, ok := strings.CutPrefix(k, "HAL9_")
		if !ok {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		got, known := cfg[flag]
		if !known {
			t.Errorf("%s is no flag of hal9 serve (hal9 config has no %q): the server ignores it", k, flag)
			continue
		}
		if s, isString := got.(string); isString && !strings.Contains(k, "SECRET") && !strings.Contains(k, "URL") && !strings.Contains(k, "TIMEOUT") && s != v {
			t.Errorf("%s=%q reached the server as %q", k, v, s)
		}
	}

	// The probes, against the real listeners (loopback ports here; the
	// listener kind follows the probe's port name).
	api, admin := freeAddr(t), freeAddr(t)
	srv := exec.Command(bin, "serve", "--addr", api, "--admin-addr", admin, "--database-url", "sqlite://"+filepath.Join(t.TempDir(), "hal9.db"),
		"--redis-url", "", "--log-level", "warn")
	srv.Env = []string{"PATH=" + os.Getenv("PATH"), "HAL9_LLM_LATENCY_SCALE=0"}
	for k, v := range env {
		srv.Env = append(srv.Env, k+"="+v)
	}
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		_ = syscall.Kill(-srv.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()
	listener := map[string]string{"http": api, "admin": admin}
	probes := map[string]*corev1.Probe{"startup": ctr.StartupProbe, "liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe}
	for _, what := range []string{"startup", "liveness", "readiness"} {
		g := probes[what].HTTPGet
		u := "http://" + listener[g.Port.String()] + g.Path
		if err := poll(ctx, u, exited); err != nil {
			t.Errorf("%s probe %s (port %s): %v", what, g.Path, g.Port.String(), err)
		}
	}
}

// poll GETs u until it answers 200 (a probe's success), the server exits,
// or 30 s pass.
func poll(ctx context.Context, u string, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("server exited: %v", err)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no 200 within 30 s (last: %s)", last)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := prom.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}
