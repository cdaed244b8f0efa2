// Package compose tests the ops stack's compose file, Dockerfile and .env.example with the
// compose-spec reference loader (github.com/compose-spec/compose-go), the library docker compose
// itself uses: no Docker engine is needed.
package compose

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

const composeFile = "docker-compose.yml"

// profiles maps each profile to the services it must start, and no others.
var profiles = map[string][]string{
	"embedded": {"gateway", "grafana", "prometheus"},
	"cpu":      {"gateway-triton", "grafana", "prometheus", "triton-cpu"},
	"gpu":      {"gateway-triton", "grafana", "prometheus", "triton-gpu"},
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

// envExample reads .env.example into a map (KEY=VALUE lines, # comments).
func envExample(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf(".env.example: malformed line %q", line)
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env
}

// load resolves the compose file the way `docker compose --profile <profile> config` does, with
// the given environment instead of the process's (so the result does not depend on the caller).
func load(t *testing.T, profile string, env map[string]string) (*types.Project, error) {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory("."),
		cli.WithEnv(environ),
		cli.WithProfiles([]string{profile}),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func mustLoad(t *testing.T, profile string) *types.Project {
	t.Helper()
	p, err := load(t, profile, envExample(t))
	if err != nil {
		t.Fatalf("profile %s: %v", profile, err)
	}
	return p
}

func TestProfilesResolve(t *testing.T) {
	for profile, want := range profiles {
		t.Run(profile, func(t *testing.T) {
			p := mustLoad(t, profile)
			got := p.ServiceNames()
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("services %v, want %v", got, want)
			}
			for _, name := range got {
				s := p.Services[name]
				if !slices.Contains(s.Profiles, profile) {
					t.Errorf("%s: profiles %v lack %s", name, s.Profiles, profile)
				}
				// Every dependency must be started by the same profile, or be optional.
				for dep, d := range s.DependsOn {
					if _, ok := p.Services[dep]; !ok && d.Required {
						t.Errorf("%s depends on %s, which profile %s does not start", name, dep, profile)
					}
				}
			}
		})
	}
}

// TestDefaultProfileIsEmbedded checks that COMPOSE_PROFILES in .env.example names a real profile.
func TestDefaultProfileIsEmbedded(t *testing.T) {
	if got := envExample(t)["COMPOSE_PROFILES"]; got != "embedded" {
		t.Fatalf("COMPOSE_PROFILES=%q in .env.example, want embedded", got)
	}
}

func TestServicesAreProductionReady(t *testing.T) {
	for profile := range profiles {
		p := mustLoad(t, profile)
		for name, s := range p.Services {
			where := profile + "/" + name
			if s.Build == nil {
				repo, tag, ok := strings.Cut(s.Image[strings.LastIndex(s.Image, "/")+1:], ":")
				if !ok || tag == "" || tag == "latest" || strings.Contains(tag, "$") {
					t.Errorf("%s: image %q (%s) is not pinned to a tag", where, s.Image, repo)
				}
			}
			if s.Restart != types.RestartPolicyUnlessStopped {
				t.Errorf("%s: restart %q, want unless-stopped", where, s.Restart)
			}
			if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Disable {
				t.Errorf("%s: no health check", where)
			}
			if s.Deploy == nil || s.Deploy.Resources.Limits == nil ||
				s.Deploy.Resources.Limits.MemoryBytes <= 0 || s.Deploy.Resources.Limits.NanoCPUs <= 0 {
				t.Errorf("%s: no cpus and memory limits", where)
			}
		}
	}
}

func TestPortsResolve(t *testing.T) {
	wantTargets := map[string][]uint32{
		"gateway":        {8000},
		"gateway-triton": {8000},
		"triton-cpu":     {8000, 8001, 8002},
		"triton-gpu":     {8000, 8001, 8002},
		"prometheus":     {9090},
		"grafana":        {3000},
	}
	for profile := range profiles {
		p := mustLoad(t, profile)
		published := map[string]string{}
		for name, s := range p.Services {
			var targets []uint32
			for _, port := range s.Ports {
				targets = append(targets, port.Target)
				n, err := strconv.Atoi(port.Published)
				if err != nil || n <= 0 || n > 65535 {
					t.Errorf("%s/%s: published port %q does not resolve to a port number", profile, name, port.Published)
					continue
				}
				key := port.HostIP + ":" + port.Published
				if other, dup := published[key]; dup {
					t.Errorf("%s: %s and %s both publish %s", profile, other, name, key)
				}
				published[key] = name
			}
			slices.Sort(targets)
			if !slices.Equal(targets, wantTargets[name]) {
				t.Errorf("%s/%s: container ports %v, want %v", profile, name, targets, wantTargets[name])
			}
		}
	}
}

// TestHostPathsExist checks every bind mount source and build context/Dockerfile: each must exist
// inside the repository (the stack must run from a clean clone).
func TestHostPathsExist(t *testing.T) {
	root := repoRoot(t)
	inRepo := func(path string) bool {
		rel, err := filepath.Rel(root, path)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
	}
	for profile := range profiles {
		p := mustLoad(t, profile)
		for name, s := range p.Services {
			where := profile + "/" + name
			for _, v := range s.Volumes {
				switch v.Type {
				case types.VolumeTypeBind:
					if !inRepo(v.Source) {
						t.Errorf("%s: bind source %s is outside the repository", where, v.Source)
					}
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("%s: bind source: %v", where, err)
					}
					if !v.ReadOnly {
						t.Errorf("%s: bind mount %s -> %s is writable; mount repository files read-only", where, v.Source, v.Target)
					}
				case types.VolumeTypeVolume:
					if _, ok := p.Volumes[v.Source]; !ok {
						t.Errorf("%s: named volume %s is not declared", where, v.Source)
					}
				default:
					t.Errorf("%s: unexpected volume type %s", where, v.Type)
				}
			}
			if s.Build != nil {
				if !inRepo(s.Build.Context) {
					t.Errorf("%s: build context %s is outside the repository", where, s.Build.Context)
				}
				df := s.Build.Dockerfile
				if !filepath.IsAbs(df) {
					df = filepath.Join(s.Build.Context, df)
				}
				if _, err := os.Stat(df); err != nil {
					t.Errorf("%s: Dockerfile: %v", where, err)
				}
			}
		}
	}
}

func env(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func hasAlias(s types.ServiceConfig, alias string) bool {
	for _, n := range s.Networks {
		if n != nil && slices.Contains(n.Aliases, alias) {
			return true
		}
	}
	return false
}

func healthURL(s types.ServiceConfig) string {
	if s.HealthCheck == nil {
		return ""
	}
	for _, arg := range s.HealthCheck.Test {
		if strings.HasPrefix(arg, "http://") {
			return arg
		}
	}
	return ""
}

func TestGatewayWiring(t *testing.T) {
	for profile := range profiles {
		p := mustLoad(t, profile)
		var gw types.ServiceConfig
		for name, s := range p.Services {
			if strings.HasPrefix(name, "gateway") {
				gw = s
			}
		}
		if !hasAlias(gw, "gateway") {
			t.Errorf("%s: %s lacks network alias gateway (Prometheus discovers it by that name)", profile, gw.Name)
		}
		if got := healthURL(gw); got != "http://127.0.0.1:8000/v1/readyz" {
			t.Errorf("%s: gateway health check %q, want GET /v1/readyz on 8000", profile, got)
		}
		if env(gw, "KRONOS_PORT") != "8000" || env(gw, "KRONOS_HOST") != "0.0.0.0" {
			t.Errorf("%s: gateway must listen on 0.0.0.0:8000 (KRONOS_HOST/KRONOS_PORT)", profile)
		}
		if profile == "embedded" {
			if b := env(gw, "KRONOS_BACKEND"); b != "" {
				t.Errorf("embedded: KRONOS_BACKEND=%q; the embedded profile uses the default in-process backend", b)
			}
			continue
		}
		if env(gw, "KRONOS_BACKEND") != "triton" || env(gw, "KRONOS_TRITON_URL") != "triton:8001" {
			t.Errorf("%s: gateway env KRONOS_BACKEND=%q KRONOS_TRITON_URL=%q, want triton, triton:8001",
				profile, env(gw, "KRONOS_BACKEND"), env(gw, "KRONOS_TRITON_URL"))
		}
		triton := p.Services["triton-"+profile]
		if !hasAlias(triton, "triton") {
			t.Errorf("%s: %s lacks network alias triton", profile, triton.Name)
		}
		if d, ok := gw.DependsOn[triton.Name]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: gateway does not wait for %s to be healthy", profile, triton.Name)
		}
	}
}

func TestTritonServices(t *testing.T) {
	common := []string{
		"--model-repository=/models", "--model-control-mode=explicit", "--load-model=*",
		"--allow-metrics=true", "--metrics-port=8002", "--strict-readiness=true",
	}
	for _, profile := range []string{"cpu", "gpu"} {
		s := mustLoad(t, profile).Services["triton-"+profile]
		if !regexp.MustCompile(`^nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3$`).MatchString(s.Image) {
			t.Errorf("%s: image %q, want nvcr.io/nvidia/tritonserver:<yy.mm>-py3", profile, s.Image)
		}
		if len(s.Command) == 0 || s.Command[0] != "tritonserver" {
			t.Errorf("%s: command %v does not start tritonserver", profile, s.Command)
		}
		for _, flag := range common {
			if !slices.Contains(s.Command, flag) {
				t.Errorf("%s: command lacks %s", profile, flag)
			}
		}
		gpuFlag := slices.Contains(s.Command, "--model-config-name=gpu")
		var devices []types.DeviceRequest
		if s.Deploy.Resources.Reservations != nil {
			devices = s.Deploy.Resources.Reservations.Devices
		}
		switch profile {
		case "cpu":
			if gpuFlag || len(devices) > 0 {
				t.Errorf("cpu: must use config.pbtxt (KIND_CPU) and reserve no GPU")
			}
		case "gpu":
			if !gpuFlag {
				t.Errorf("gpu: command lacks --model-config-name=gpu")
			}
			if len(devices) != 1 || devices[0].Driver != "nvidia" || !slices.Contains(devices[0].Capabilities, "gpu") {
				t.Errorf("gpu: device reservation %+v, want one nvidia device with capability gpu", devices)
			}
		}
		if got := healthURL(s); got != "http://127.0.0.1:8000/v2/health/ready" {
			t.Errorf("%s: health check %q, want /v2/health/ready on 8000", profile, got)
		}
		var models *types.ServiceVolumeConfig
		for i, v := range s.Volumes {
			if v.Target == "/models" {
				models = &s.Volumes[i]
			}
		}
		if models == nil || filepath.Base(models.Source) != "model_repository" || !models.ReadOnly {
			t.Errorf("%s: model_repository must be mounted read-only at /models, got %+v", profile, models)
		}
		if profile == "gpu" {
			checkTRTCache(t, s)
		}
	}
}

// checkTRTCache checks that every TensorRT engine cache path named by an exported GPU config
// (model_repository/*/configs/gpu.pbtxt) is a volume of the gpu Triton service, so that engines
// survive restarts.
func checkTRTCache(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	configs, err := filepath.Glob(filepath.Join(repoRoot(t), "model_repository", "*", "configs", "gpu.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(configs) == 0 {
		t.Log("no model_repository/*/configs/gpu.pbtxt yet: TensorRT cache path not cross-checked")
	}
	cachePath := regexp.MustCompile(`"trt_engine_cache_path"\s*value:\s*"([^"]+)"`)
	for _, c := range configs {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cachePath.FindAllSubmatch(b, -1) {
			mounted := false
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeVolume && v.Target == string(m[1]) && !v.ReadOnly {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("%s caches TensorRT engines in %s, which the gpu Triton service does not mount as a writable volume", c, m[1])
			}
		}
	}
}

// TestMonitoringWiring checks that Prometheus and Grafana mount the files the rest of the
// repository provides, and that Grafana's provisioning points at those mounts.
func TestMonitoringWiring(t *testing.T) {
	root := repoRoot(t)
	p := mustLoad(t, "embedded")
	mounts := func(service string) map[string]string {
		m := map[string]string{}
		for _, v := range p.Services[service].Volumes {
			if v.Type == types.VolumeTypeBind {
				rel, _ := filepath.Rel(root, v.Source)
				m[v.Target] = filepath.ToSlash(rel)
			}
		}
		return m
	}
	prom := mounts("prometheus")
	if prom["/etc/prometheus/prometheus.yml"] != "prometheus/prometheus.yml" || prom["/etc/prometheus/rules"] != "prometheus/rules" {
		t.Errorf("prometheus mounts %v, want prometheus/prometheus.yml and prometheus/rules under /etc/prometheus", prom)
	}
	if !slices.Contains(p.Services["prometheus"].Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus command %v does not load /etc/prometheus/prometheus.yml", p.Services["prometheus"].Command)
	}

	graf := mounts("grafana")
	if graf["/etc/grafana/provisioning"] != "grafana/provisioning" {
		t.Errorf("grafana does not mount grafana/provisioning at /etc/grafana/provisioning: %v", graf)
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(root, "grafana/provisioning/dashboards/kronos.yml"), &provider)
	if len(provider.Providers) != 1 {
		t.Fatalf("want one dashboard provider, got %d", len(provider.Providers))
	}
	if path := provider.Providers[0].Options.Path; graf[path] != "grafana/dashboards" {
		t.Errorf("dashboard provider reads %s, but grafana/dashboards is mounted at %v", path, graf)
	}
	home := env(p.Services["grafana"], "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
	if rel, ok := strings.CutPrefix(home, provider.Providers[0].Options.Path+"/"); !ok {
		t.Errorf("home dashboard %s is not under the provider path", home)
	} else if _, err := os.Stat(filepath.Join(root, "grafana/dashboards", rel)); err != nil {
		t.Errorf("home dashboard: %v", err)
	}

	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(root, "grafana/provisioning/datasources/prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("want one prometheus datasource, got %+v", ds.Datasources)
	}
	var promPort uint32
	for _, port := range p.Services["prometheus"].Ports {
		promPort = port.Target
	}
	if want := fmt.Sprintf("http://prometheus:%d", promPort); ds.Datasources[0].URL != want {
		t.Errorf("datasource url %s, want %s (the prometheus service)", ds.Datasources[0].URL, want)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestMemoryLimitMatchesAlertRule keeps the gateway's container memory limit and the recording
// rule kronos:memory_limit_bytes (used by the memory alerts) in step.
func TestMemoryLimitMatchesAlertRule(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join(repoRoot(t), "prometheus/rules/kronos.rules.yml"), &rules)
	var limit int64 = -1
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record == "kronos:memory_limit_bytes" {
				m := regexp.MustCompile(`^vector\((\d+)\)$`).FindStringSubmatch(strings.TrimSpace(r.Expr))
				if m == nil {
					t.Fatalf("kronos:memory_limit_bytes: expr %q is not vector(<bytes>)", r.Expr)
				}
				limit, _ = strconv.ParseInt(m[1], 10, 64)
			}
		}
	}
	if limit < 0 {
		t.Fatal("recording rule kronos:memory_limit_bytes not found")
	}
	for profile := range profiles {
		for name, s := range mustLoad(t, profile).Services {
			if strings.HasPrefix(name, "gateway") {
				if got := int64(s.Deploy.Resources.Limits.MemoryBytes); got != limit {
					t.Errorf("%s/%s: memory limit %d bytes, kronos:memory_limit_bytes %d", profile, name, got, limit)
				}
			}
		}
	}
}

// TestEnvExampleMatchesCompose checks that .env.example documents exactly the variables the
// compose file interpolates (plus COMPOSE_PROFILES).
func TestEnvExampleMatchesCompose(t *testing.T) {
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{"COMPOSE_PROFILES": true}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(string(b), -1) {
		used[m[1]] = true
	}
	documented := envExample(t)
	for v := range used {
		if _, ok := documented[v]; !ok {
			t.Errorf("compose uses ${%s}, which .env.example does not document", v)
		}
	}
	for v := range documented {
		if !used[v] {
			t.Errorf(".env.example documents %s, which the compose file does not use", v)
		}
	}
}

// TestRequiredSecret checks that the stack refuses to start without a Grafana admin password
// instead of falling back to a well-known one.
func TestRequiredSecret(t *testing.T) {
	env := envExample(t)
	delete(env, "GRAFANA_ADMIN_PASSWORD")
	if _, err := load(t, "embedded", env); err == nil || !strings.Contains(err.Error(), "GRAFANA_ADMIN_PASSWORD") {
		t.Fatalf("loading without GRAFANA_ADMIN_PASSWORD: err = %v, want a required-variable error", err)
	}
}
