package triton

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
	"github.com/kronos-gateway/kronos-gateway/triton/internal/kronostest"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
	"github.com/kronos-gateway/kronos-gateway/triton/tritontest"
)

const moduleRoot = "../"

func TestMain(m *testing.M) {
	code := 0
	func() {
		defer kronostest.Cleanup()
		defer closeEmbedded()
		code = m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// quiet is a logger that drops everything.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// ortLib returns the ONNX Runtime library ($KRONOS_ORT_LIB, else the one
// `make ort` extracts) or skips the test.
func ortLib(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(onnxlocal.LibPathEnv); p != "" {
		return p
	}
	p, _ := filepath.Abs(filepath.Join(moduleRoot, onnxlocal.DefaultLibPath))
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no ONNX Runtime library: run `make ort` or set %s", onnxlocal.LibPathEnv)
	}
	return p
}

// embeddedBackends caches one embedded backend per conformance config for
// the whole test binary (exporting and opening them is the slow part).
var embeddedBackends struct {
	sync.Mutex
	b map[string]*onnxlocal.Backend
	m map[string]*graphs.Manifest
}

func closeEmbedded() {
	embeddedBackends.Lock()
	defer embeddedBackends.Unlock()
	for _, b := range embeddedBackends.b {
		b.Close()
	}
	embeddedBackends.b = nil
}

// embedded returns the embedded backend of conformance config c (version
// 1 exported once into a temporary repository) and its manifest.
func embedded(t testing.TB, c kronostest.Config) (*onnxlocal.Backend, *graphs.Manifest) {
	t.Helper()
	lib := ortLib(t)
	embeddedBackends.Lock()
	defer embeddedBackends.Unlock()
	if b, ok := embeddedBackends.b[c.Name]; ok {
		return b, embeddedBackends.m[c.Name]
	}
	repo, err := kronostest.Repo(moduleRoot, c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := onnxlocal.Open(onnxlocal.Options{RepoDir: repo, Model: c.Name, LibPath: lib, IntraOpThreads: 1, MaxContext: c.MaxContext})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(repo, graphs.ModelName(c.Name, graphs.Prefill), "1", "kronos.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m graphs.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if embeddedBackends.b == nil {
		embeddedBackends.b, embeddedBackends.m = map[string]*onnxlocal.Backend{}, map[string]*graphs.Manifest{}
	}
	embeddedBackends.b[c.Name], embeddedBackends.m[c.Name] = b, &m
	return b, &m
}

// fakeTriton starts a fake Triton serving version 1 of c on the embedded
// backend (window and window_s2 composed from its prefill and s2 graphs)
// and stops it at the end of the test.
func fakeTriton(t testing.TB, c kronostest.Config, opt tritontest.Options, p modelconfig.Params) (*tritontest.Server, infer.Backend, *graphs.Manifest) {
	return fakeTritonWith(t, c, opt, p, false)
}

// fakeTritonWith is fakeTriton; with windowGraphs the window models run
// the exported window and window_s2 graphs on ONNX Runtime instead.
func fakeTritonWith(t testing.TB, c kronostest.Config, opt tritontest.Options, p modelconfig.Params, windowGraphs bool) (*tritontest.Server, infer.Backend, *graphs.Manifest) {
	t.Helper()
	emb, man := embedded(t, c)
	models := tritontest.KronosModels(emb)
	if windowGraphs {
		wm, closeAll, err := kronostest.WindowModels(moduleRoot, c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(closeAll) // after srv.Stop (cleanups run last first)
		for r, m := range wm {
			models[r] = m
		}
	}
	srv := tritontest.New(opt)
	if err := tritontest.AddKronosModels(srv, man, "1", models, p, true); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv, emb, man
}

// client connects a Triton backend to addr with a fresh registry and
// closes it at the end of the test.
func client(t testing.TB, addr string, o Options) (*Backend, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.URL = addr
	if o.Model == "" {
		o.Model = kronostest.Tiny.Name
	}
	o.Registerer = reg
	o.Logger = quiet
	if o.ReconnectBaseDelay == 0 {
		o.ReconnectBaseDelay = 10 * time.Millisecond
		o.ReconnectMaxDelay = 50 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := New(ctx, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, reg
}

// testCtx is a context that ends with the test (bounded, never a timing
// assertion).
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// windowsOf returns the windows of a tiny case-like batch: rows of
// different lengths (n[i] tokens) built from deterministic ids and stamps.
func windowsOf(n []int, v1, v2 int) []infer.Window {
	ws := make([]infer.Window, len(n))
	for r, k := range n {
		w := infer.Window{}
		for i := range k {
			w.S1 = append(w.S1, int64((r*7+i*3)%v1))
			w.S2 = append(w.S2, int64((r*5+i*11)%v2))
			w.Stamps = append(w.Stamps, int64(i%60), int64(i%24), int64(i%7), int64(1+i%28), int64(1+i%12))
		}
		ws[r] = w
	}
	return ws
}

// metricValue returns the value of the counter, gauge or histogram count
// of metric name with exactly the given labels in reg (-1 when absent).
func metricValue(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}
