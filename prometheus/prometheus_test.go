package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ruleFile mirrors the parts of a Prometheus rule file the checks below need.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTestFile mirrors a promtool unit-test file.
type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name           string `yaml:"name"`
		AlertRuleTests []struct {
			EvalTime  string           `yaml:"eval_time"`
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
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

func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("rules/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in rules/ (%v)", err)
	}
	return files
}

func testFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("tests/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule test files in tests/ (%v)", err)
	}
	return files
}

// promtool returns the path of promtool, skipping the test when it is not installed
// (CI installs the Debian package prometheus, which ships it).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus); skipping the promtool checks")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestPromtoolCheckConfig(t *testing.T) {
	runPromtool(t, "check", "config", "prometheus.yml")
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, append([]string{"check", "rules"}, ruleFiles(t)...)...)
}

func TestPromtoolTestRules(t *testing.T) {
	runPromtool(t, append([]string{"test", "rules"}, testFiles(t)...)...)
}

// TestScrapeConfig checks that the scrape jobs point where the gateway and Triton serve metrics.
func TestScrapeConfig(t *testing.T) {
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName     string `yaml:"job_name"`
			MetricsPath string `yaml:"metrics_path"`
			DNSSD       []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus.yml", &cfg)
	want := map[string]struct {
		path, host string
		port       int
	}{
		"kronos-gateway": {"/v1/metrics", "gateway", 8000},
		"triton":         {"/metrics", "triton", 8002},
	}
	for _, sc := range cfg.ScrapeConfigs {
		w, ok := want[sc.JobName]
		if !ok {
			continue
		}
		delete(want, sc.JobName)
		if sc.MetricsPath != w.path {
			t.Errorf("job %s: metrics_path %q, want %q", sc.JobName, sc.MetricsPath, w.path)
		}
		if len(sc.DNSSD) != 1 || !slices.Equal(sc.DNSSD[0].Names, []string{w.host}) || sc.DNSSD[0].Port != w.port {
			t.Errorf("job %s: dns_sd_configs %+v, want names [%s] port %d", sc.JobName, sc.DNSSD, w.host, w.port)
		}
	}
	for job := range want {
		t.Errorf("scrape job %s missing", job)
	}
	// The rules must be loaded from where compose mounts them (rules/ next to prometheus.yml).
	for _, f := range ruleFiles(t) {
		matched := false
		for _, pattern := range cfg.RuleFiles {
			if ok, _ := filepath.Match(pattern, f); ok {
				matched = true
			}
		}
		if !matched {
			t.Errorf("rule file %s is not loaded by rule_files %v", f, cfg.RuleFiles)
		}
	}
}

// githubAnchor turns a Markdown heading into the anchor GitHub generates for it.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	heading := regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`)
	for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	return anchors
}

// TestAlertConventions checks every alert: a for: duration, a severity, a summary and description,
// a runbook_url whose anchor exists in docs/operations.md, and only metrics the stack exposes.
func TestAlertConventions(t *testing.T) {
	anchors := runbookAnchors(t)
	recorded := map[string]bool{}
	var alerts int
	for _, path := range ruleFiles(t) {
		var rf ruleFile
		readYAML(t, path, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recorded[r.Record] = true
				}
			}
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				names, err := MetricNames(r.Expr)
				if err != nil {
					t.Errorf("%s: %s%s: %v", path, r.Alert, r.Record, err)
				}
				for _, name := range names {
					// up is Prometheus's own scrape-health series, recorded names come from this file.
					if !Known(name) && name != "up" && !recorded[name] {
						t.Errorf("%s: rule %s%s uses unknown metric %q", path, r.Alert, r.Record, name)
					}
				}
				if r.Alert == "" {
					continue
				}
				alerts++
				if r.For == "" || r.For == "0s" || r.For == "0m" {
					t.Errorf("%s: alert %s has no for: duration", path, r.Alert)
				}
				if s := r.Labels["severity"]; s != "warning" && s != "critical" {
					t.Errorf("%s: alert %s has severity %q, want warning or critical", path, r.Alert, s)
				}
				for _, a := range []string{"summary", "description"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("%s: alert %s has no %s annotation", path, r.Alert, a)
					}
				}
				doc, anchor, ok := strings.Cut(r.Annotations["runbook_url"], "#")
				if !ok || doc != "docs/operations.md" {
					t.Errorf("%s: alert %s: runbook_url %q does not point into docs/operations.md#...", path, r.Alert, r.Annotations["runbook_url"])
				} else if !anchors[anchor] {
					t.Errorf("%s: alert %s: runbook anchor #%s has no heading in docs/operations.md", path, r.Alert, anchor)
				}
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts found")
	}
}

// TestEveryAlertFiresAndStaysSilent checks that the promtool unit tests cover every alert with at
// least one evaluation where it fires and one where it does not.
func TestEveryAlertFiresAndStaysSilent(t *testing.T) {
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, path := range testFiles(t) {
		var tf ruleTestFile
		readYAML(t, path, &tf)
		for _, tc := range tf.Tests {
			for _, at := range tc.AlertRuleTests {
				if len(at.ExpAlerts) > 0 {
					fires[at.Alertname] = true
				} else {
					silent[at.Alertname] = true
				}
			}
		}
	}
	var alerts []string
	for _, path := range ruleFiles(t) {
		var rf ruleFile
		readYAML(t, path, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					alerts = append(alerts, r.Alert)
				}
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("alert %s: no promtool test where it fires", a)
		}
		if !silent[a] {
			t.Errorf("alert %s: no promtool test where it stays silent", a)
		}
	}
	for a := range fires {
		if !slices.Contains(alerts, a) {
			t.Errorf("rule tests expect alert %s, which no rule file defines", a)
		}
	}
}
