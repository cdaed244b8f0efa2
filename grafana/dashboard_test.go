// Package grafana tests the Grafana dashboard and provisioning files of the ops stack.
// The opsstack-tagged test in this package (opsstack_test.go) evaluates every panel query against
// a real Prometheus scraping a real gateway.
package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	promassets "github.com/kronos-gateway/kronos-gateway/prometheus"
	"go.yaml.in/yaml/v3"
)

const dashboardFile = "dashboards/kronos-gateway.json"

// tritonPanels are the panels that have data only with the Triton backend: Triton's own nv_*
// metrics, and the gateway metrics in tritonOnlyMetrics. They stay empty in the embedded profile
// (and in the opsstack test, which runs the gateway with its embedded backend).
var tritonPanels = []string{
	"Circuit breaker",
	"Triton queue and compute time per request",
	"Triton pending requests",
	"Triton requests and failures",
	"Triton average batch size",
	"GPU utilization and memory",
	"Triton host CPU and memory",
}

// tritonOnlyMetrics are the gateway metrics that only the Triton backend exports.
var tritonOnlyMetrics = map[string]string{
	"kronos_breaker_state": "registered by the Triton backend's circuit breaker (triton.NewBreaker)",
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
	Instant    bool           `json:"instant"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct{ H, W, X, Y int }

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	GridPos    *gridPos       `json:"gridPos"`
	Datasource *datasourceRef `json:"datasource"`
	Targets    []target       `json:"targets"`
	Panels     []panel        `json:"panels"` // a collapsed row's panels
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid dashboard JSON: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows: top-level panels plus the panels inside collapsed rows.
func allPanels(d dashboard) []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// queryPanels are the panels that query Prometheus (everything but rows).
func queryPanels(d dashboard) []panel {
	var out []panel
	for _, p := range allPanels(d) {
		if p.Type != "row" {
			out = append(out, p)
		}
	}
	return out
}

// promQL turns a panel expression into plain PromQL by substituting Grafana's interval variables
// with a fixed range.
func promQL(expr, rng string) string {
	for _, v := range []string{"${__rate_interval}", "$__rate_interval", "${__interval}", "$__interval", "$__range"} {
		expr = strings.ReplaceAll(expr, v, rng)
	}
	return expr
}

func provisionedDatasourceUID(t *testing.T) string {
	t.Helper()
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile("provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID == "" {
		t.Fatalf("want one prometheus datasource with a uid, got %+v", ds.Datasources)
	}
	return ds.Datasources[0].UID
}

func TestDashboardBasics(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("dashboard needs uid, title and schemaVersion; got %q %q %d", d.UID, d.Title, d.SchemaVersion)
	}
	if len(queryPanels(d)) == 0 {
		t.Fatal("no panels")
	}
}

func TestPanelIDsUnique(t *testing.T) {
	seen := map[int]string{}
	for _, p := range allPanels(loadDashboard(t)) {
		if p.ID <= 0 {
			t.Errorf("panel %q has no id", p.Title)
		}
		if other, dup := seen[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		seen[p.ID] = p.Title
	}
}

func TestPanelsHaveDatasourceAndTargets(t *testing.T) {
	uid := provisionedDatasourceUID(t)
	for _, p := range queryPanels(loadDashboard(t)) {
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != uid {
			t.Errorf("panel %q: datasource %+v, want prometheus uid %s", p.Title, p.Datasource, uid)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: target %s has no expr", p.Title, tg.RefID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: missing or duplicate refId %q", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != uid {
				t.Errorf("panel %q: target %s uses datasource %s", p.Title, tg.RefID, tg.Datasource.UID)
			}
		}
	}
}

func TestLayout(t *testing.T) {
	ps := allPanels(loadDashboard(t))
	for _, p := range ps {
		g := p.GridPos
		if g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, g)
		}
	}
	for i, a := range ps {
		for _, b := range ps[i+1:] {
			if a.GridPos == nil || b.GridPos == nil {
				continue
			}
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %q %+v and %q %+v overlap", a.Title, *ga, b.Title, *gb)
			}
		}
	}
}

// TestQueriesUseKnownMetrics checks that every query selects only gateway metrics from the
// catalogue or process_*, go_* and nv_* series, that every gateway metric is shown somewhere,
// and that the Triton panels (excepted in the opsstack test) are exactly those fed only by nv_*
// metrics or by gateway metrics that only the Triton backend exports.
func TestQueriesUseKnownMetrics(t *testing.T) {
	shown := map[string]bool{}
	var onlyTriton []string
	for _, p := range queryPanels(loadDashboard(t)) {
		tritonSeries, otherSeries := false, false
		for _, tg := range p.Targets {
			names, err := promassets.MetricNames(tg.Expr)
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
			if len(names) == 0 {
				t.Errorf("panel %q target %s selects no metric", p.Title, tg.RefID)
			}
			for _, n := range names {
				if !promassets.Known(n) {
					t.Errorf("panel %q: unknown metric %q", p.Title, n)
				}
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(n, suffix); ok && promassets.GatewayMetrics[base].Kind == promassets.Histogram {
						n = base
					}
				}
				shown[n] = true
				if _, ok := tritonOnlyMetrics[n]; ok || strings.HasPrefix(n, "nv_") {
					tritonSeries = true
				} else {
					otherSeries = true
				}
			}
		}
		if tritonSeries {
			onlyTriton = append(onlyTriton, p.Title)
			if otherSeries {
				t.Errorf("panel %q mixes Triton-only and always-present metrics", p.Title)
			}
		}
	}
	for name := range promassets.GatewayMetrics {
		if !shown[name] {
			t.Errorf("gateway metric %s is on no panel", name)
		}
	}
	if !slices.Equal(onlyTriton, tritonPanels) {
		t.Errorf("panels with Triton-only metrics %q, want the tritonPanels list %q", onlyTriton, tritonPanels)
	}
}

// TestQueriesParse feeds every panel query to Prometheus's own PromQL parser through
// `promtool check rules` (each query becomes a recording rule).
func TestQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus); skipping the PromQL parse check")
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, p := range queryPanels(loadDashboard(t)) {
		for _, tg := range p.Targets {
			rules = append(rules, rule{fmt.Sprintf("dashboard:panel_%d_%s", p.ID, tg.RefID), promQL(tg.Expr, "1m")})
		}
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard queries: %v\n%s", err, out)
	}
}

func TestDashboardProvider(t *testing.T) {
	var pv struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err := os.ReadFile("provisioning/dashboards/kronos.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &pv); err != nil {
		t.Fatal(err)
	}
	if pv.APIVersion != 1 || len(pv.Providers) != 1 || pv.Providers[0].Type != "file" || pv.Providers[0].Options.Path == "" {
		t.Fatalf("want apiVersion 1 and one file provider with a path, got %+v", pv)
	}
}
