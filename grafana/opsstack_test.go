//go:build opsstack

// End-to-end check of the ops stack without Docker: a real gateway (built from ./cmd/kronos-gateway,
// embedded ONNX Runtime backend) on a free loopback port, a real Prometheus (Debian package)
// scraping it every second with this repository's alert rules loaded, real forecasts built from
// testdata/data/regression_input.csv (plus a 30-second headless Locust smoke when Locust is
// installed), then every dashboard query evaluated through Prometheus's HTTP API.
//
//	KRONOS_ORT_LIB=$PWD/third_party/onnxruntime/libonnxruntime.so.1 go test -tags opsstack -count=1 -v ./grafana/
//
// Everything listens on 127.0.0.1 and is stopped when the test ends. The load is bounded: a fixed
// number of requests, and a Locust run of 30 s that stops by itself.
package grafana

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The gateway runs with a short inference timeout so that one deliberately huge forecast times
// out (kronos_timeouts_total) while the small ones used everywhere else finish in milliseconds.
const (
	inferenceTimeout = "2s"
	requestTimeout   = "10s"
	maxBodyBytes     = 256 << 10
	queryRange       = "5m" // replaces $__rate_interval: covers the whole run
)

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs cmd with its output in a log file, and stops it (SIGTERM, then SIGKILL after 30 s)
// when the test ends; the log is printed if the test failed.
func start(t *testing.T, name string, cmd *exec.Cmd) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
}

// waitFor polls url until it answers 200, failing after limit (a bound on a stuck start, not a
// performance threshold).
func waitFor(t *testing.T, url string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			if resp.StatusCode == http.StatusNotFound {
				t.Fatalf("%s: 404, the route does not exist", url)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s (last: %v)", url, limit, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type candleRow struct {
	ts                                     time.Time
	open, high, low, close, volume, amount float64
}

func readCandles(t *testing.T) []candleRow {
	t.Helper()
	f, err := os.Open(repoPath(t, "testdata/data/regression_input.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var rows []candleRow
	for _, r := range recs[1:] {
		ts, err := time.Parse("2006-01-02 15:04:05", r[0])
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float64, 6)
		for i := range v {
			if v[i], err = strconv.ParseFloat(r[i+1], 64); err != nil {
				t.Fatal(err)
			}
		}
		rows = append(rows, candleRow{ts, v[0], v[1], v[2], v[3], v[4], v[5]})
	}
	return rows
}

// series builds one forecast request: a window of lookback candles at a random position and
// predLen timestamps continuing the 5-minute grid.
func series(rows []candleRow, rng *rand.Rand, id string, lookback, predLen int) map[string]any {
	start := rng.IntN(len(rows) - lookback + 1)
	w := rows[start : start+lookback]
	var candles []map[string]float64
	var stamps, pred []string
	for _, c := range w {
		candles = append(candles, map[string]float64{"open": c.open, "high": c.high, "low": c.low, "close": c.close, "volume": c.volume, "amount": c.amount})
		stamps = append(stamps, c.ts.Format("2006-01-02T15:04:05"))
	}
	last := w[len(w)-1].ts
	for k := 1; k <= predLen; k++ {
		pred = append(pred, last.Add(time.Duration(k)*5*time.Minute).Format("2006-01-02T15:04:05"))
	}
	return map[string]any{"series_id": id, "candles": candles, "timestamps": stamps, "prediction_timestamps": pred}
}

func post(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	// The gateway answers an over-limit body with 413 and closes without
	// reading it; a client still writing may see a reset instead of the
	// response (a transport race): retry those a few times.
	for attempt := 0; err != nil && attempt < 5; attempt++ {
		resp, err = http.Post(url, "application/json", bytes.NewReader(b))
	}
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func promGet(t *testing.T, base, path string, params url.Values) promResponse {
	t.Helper()
	resp, err := http.Get(base + path + "?" + params.Encode())
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var pr promResponse
	if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return pr
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// instantQuery evaluates expr and returns its samples, or the error Prometheus reported.
func instantQuery(t *testing.T, base, expr string) ([]sample, error) {
	t.Helper()
	pr := promGet(t, base, "/api/v1/query", url.Values{"query": {expr}})
	if pr.Status != "success" {
		return nil, fmt.Errorf("%s: %s", pr.ErrorType, pr.Error)
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(pr.Data, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var s []sample
		err := json.Unmarshal(data.Result, &s)
		return s, err
	case "scalar":
		var v [2]any
		err := json.Unmarshal(data.Result, &v)
		return []sample{{Value: v}}, err
	}
	return nil, fmt.Errorf("unexpected result type %s", data.ResultType)
}

func finite(s sample) bool {
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	return err == nil && !math.IsNaN(v) && !math.IsInf(v, 0)
}

// gatewayRequestCount sums kronos_requests_total over all label sets on the gateway's /v1/metrics.
func gatewayRequestCount(t *testing.T, gwURL string) float64 {
	t.Helper()
	resp, err := http.Get(gwURL + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/metrics: HTTP %d: %.300s", resp.StatusCode, b)
	}
	total, found := 0.0, false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "kronos_requests_total{") && !strings.HasPrefix(line, "kronos_requests_total ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("/v1/metrics: bad sample %q", line)
		}
		total, found = total+v, true
	}
	if !found {
		t.Fatal("/v1/metrics has no kronos_requests_total")
	}
	return total
}

func TestOpsStack(t *testing.T) {
	ortLib := os.Getenv("KRONOS_ORT_LIB")
	if ortLib == "" {
		ortLib = repoPath(t, "third_party/onnxruntime/libonnxruntime.so.1")
	}
	if _, err := os.Stat(ortLib); err != nil {
		t.Fatalf("ONNX Runtime library (KRONOS_ORT_LIB, `make ort`): %v", err)
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not on PATH (Debian package prometheus)")
	}
	dir := t.TempDir()

	// 1. The gateway.
	gwBin := filepath.Join(dir, "kronos-gateway")
	build := exec.Command("go", "build", "-o", gwBin, "./cmd/kronos-gateway")
	build.Dir = repoPath(t, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kronos-gateway: %v\n%s", err, out)
	}
	gwPort := freePort(t)
	gwURL := fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	gw := exec.Command(gwBin)
	gw.Dir = repoPath(t, ".")
	gw.Env = append(os.Environ(),
		"KRONOS_HOST=127.0.0.1",
		"KRONOS_PORT="+strconv.Itoa(gwPort),
		"KRONOS_ORT_LIB="+ortLib,
		"KRONOS_INFERENCE_TIMEOUT="+inferenceTimeout,
		"KRONOS_REQUEST_TIMEOUT="+requestTimeout,
		"KRONOS_MAX_BODY_BYTES="+strconv.Itoa(maxBodyBytes),
	)
	start(t, "gateway", gw)
	waitFor(t, gwURL+"/v1/readyz", 3*time.Minute)

	// 2. Prometheus, scraping every second, with the stack's rules.
	promPort := freePort(t)
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: kronos-gateway
    metrics_path: /v1/metrics
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, repoPath(t, "prometheus/rules/*.yml"), gwPort)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, "prometheus", exec.Command(promBin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+fmt.Sprintf("127.0.0.1:%d", promPort),
		"--log.level=warn"))
	waitFor(t, promURL+"/-/ready", time.Minute)

	// 3. Traffic: real forecasts, one per error class the dashboard shows, a timeout, and a
	// Locust smoke.
	rows := readCandles(t)
	rng := rand.New(rand.NewPCG(1, 2))
	expect := func(what string, want, got int, body []byte) {
		t.Helper()
		if got != want {
			t.Errorf("%s: HTTP %d, want %d: %.300s", what, got, want, body)
		}
	}
	for i := range 8 {
		code, body := post(t, gwURL+"/v1/predict/single", series(rows, rng, fmt.Sprintf("single-%d", i), 64, 8))
		expect("single forecast", http.StatusOK, code, body)
	}
	for i := range 3 {
		items := []any{}
		for j := range 3 {
			items = append(items, series(rows, rng, fmt.Sprintf("batch-%d-%d", i, j), 64, 8))
		}
		code, body := post(t, gwURL+"/v1/predict/batch", map[string]any{"items": items})
		expect("batch forecast", http.StatusOK, code, body)
	}
	bad := series(rows, rng, "bad", 16, 2)
	bad["candles"].([]map[string]float64)[3]["high"] = 0.5 // below low
	code, body := post(t, gwURL+"/v1/predict/single", bad)
	expect("invalid candle", http.StatusUnprocessableEntity, code, body)
	code, body = post(t, gwURL+"/v1/predict/nope", series(rows, rng, "x", 16, 2))
	expect("unknown route", http.StatusNotFound, code, body)
	code, body = post(t, gwURL+"/v1/predict/single", bytes.Repeat([]byte(" "), maxBodyBytes+1024))
	expect("oversized body", http.StatusRequestEntityTooLarge, code, body)
	huge := series(rows, rng, "huge", 2048, 256) // 256 steps: the max context of kronos-nano
	huge["overrides"] = map[string]any{"sample_count": 32}
	code, body = post(t, gwURL+"/v1/predict/single", huge)
	expect("forecast over the inference timeout", http.StatusGatewayTimeout, code, body)

	t.Run("locust smoke", func(t *testing.T) {
		if _, err := exec.LookPath("locust"); err != nil {
			t.Skip("locust not installed (Debian package python3-locust)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		run := exec.CommandContext(ctx, repoPath(t, "locust/run.sh"), "steady", gwURL, "30s")
		run.Env = append(os.Environ(),
			"RESULTS_DIR="+filepath.Join(dir, "locust"),
			"KRONOS_LOAD_LOOKBACK=64", "KRONOS_LOAD_PRED_LEN=8", "KRONOS_LOAD_BATCH_ITEMS=2",
			"KRONOS_LOAD_SEED=1", "PYTHONDONTWRITEBYTECODE=1")
		out, err := run.CombinedOutput()
		summary := ""
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "run.sh:") || strings.Contains(l, "Aggregated") {
				summary += l + "\n"
			}
		}
		t.Logf("locust/run.sh steady %s 30s:\n%s", gwURL, summary)
		if err != nil {
			t.Fatalf("locust/run.sh: %v\n%s", err, out)
		}
	})

	// 4. Wait until Prometheus has scraped everything sent above: the gateway's own count of
	// answered requests now is a lower bound for what Prometheus must see.
	served := gatewayRequestCount(t, gwURL)
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := instantQuery(t, promURL, `sum(kronos_requests_total{job="kronos-gateway"})`)
		if err == nil && len(s) == 1 {
			if v, _ := strconv.ParseFloat(s[0].Value[1].(string), 64); v >= served {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not catch up with the gateway's %v requests (last: %v %v); is /v1/metrics served?", served, s, err)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(3 * time.Second) // a few more scrapes, so that every rate has two samples after the last request

	// 5. Every dashboard query must parse and, Triton panels excepted, return data.
	d := loadDashboard(t)
	var empty []string
	for _, p := range queryPanels(d) {
		triton := slices.Contains(tritonPanels, p.Title)
		for _, tg := range p.Targets {
			expr := promQL(tg.Expr, queryRange)
			s, err := instantQuery(t, promURL, expr)
			switch {
			case err != nil:
				t.Errorf("panel %q target %s: Prometheus rejects %q: %v", p.Title, tg.RefID, expr, err)
			case triton:
				t.Logf("panel %q target %s: %d series (Triton panel, not required)", p.Title, tg.RefID, len(s))
			case len(s) == 0:
				empty = append(empty, fmt.Sprintf("%q/%s", p.Title, tg.RefID))
				t.Errorf("panel %q target %s returns no data: %s", p.Title, tg.RefID, expr)
			case !slices.ContainsFunc(s, finite):
				t.Errorf("panel %q target %s returns only NaN/Inf: %s -> %v", p.Title, tg.RefID, expr, s)
			default:
				t.Logf("panel %q target %s: %d series", p.Title, tg.RefID, len(s))
			}
		}
	}
	t.Logf("Triton panels excepted (no Triton in this test): %q", tritonPanels)
	if len(empty) > 0 {
		t.Logf("panels without data: %s", strings.Join(empty, ", "))
	}

	// 6. The alert and recording rules evaluate without errors against the real metrics.
	pr := promGet(t, promURL, "/api/v1/rules", nil)
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name           string `json:"name"`
				Health         string `json:"health"`
				LastError      string `json:"lastError"`
				LastEvaluation string `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(pr.Data, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s/%s: health %q %s", g.Name, r.Name, r.Health, r.LastError)
			}
		}
	}
	if n == 0 {
		t.Error("Prometheus loaded no rules")
	}
}
