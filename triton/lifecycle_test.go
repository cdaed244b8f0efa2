package triton

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/triton/internal/kronostest"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
	"github.com/kronos-gateway/kronos-gateway/triton/tritontest"
)

// versionsOf returns the versions ModelInfer calls to model named, in order.
func versionsOf(srv *tritontest.Server, model string) []string {
	var vs []string
	for _, c := range srv.Calls() {
		if c.Model == model {
			vs = append(vs, c.Version)
		}
	}
	return vs
}

// TestHotSwapKeepsPinnedVersion loads version 2 of every Triton model
// while a session pinned to version 1 is in flight: the session keeps
// calling version 1, new sessions go to version 2, Info reports it, and
// after version 1 is gone the old session's next call fails with
// KindUnavailable (retryable) rather than mixing versions.
func TestHotSwapKeepsPinnedVersion(t *testing.T) {
	srv, emb, man := fakeTriton(t, kronostest.Tiny, tritontest.Options{Explicit: true}, modelconfig.Params{})
	b, reg := client(t, srv.Addr(), Options{})
	ctx := testCtx(t)
	ws := windowsOf([]int{20, 9}, 16, 16)

	old, err := b.OpenSession(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if old.Version() != "1" {
		t.Fatalf("pinned %s, want 1", old.Version())
	}
	if _, err := old.S1Logits(ctx, ws); err != nil {
		t.Fatal(err)
	}

	// Version 2 appears in the repository (not loaded), then the admin API
	// loads each model; the config keeps two versions (latest{2}).
	for _, r := range modelconfig.TritonRoles {
		cfg, err := modelconfig.Build(man, r, modelconfig.CPU, modelconfig.Params{})
		if err != nil {
			t.Fatal(err)
		}
		srv.AddModel(cfg, "2", tritontest.KronosModels(emb)[r], false)
	}
	for _, m := range b.Models() {
		if err := b.Load(ctx, m, LoadOptions{}); err != nil {
			t.Fatalf("load %s: %v", m, err)
		}
	}
	if _, err := old.S2Logits(ctx, []int64{1, 2}); err != nil {
		t.Fatalf("pinned session after the swap: %v", err)
	}
	fresh, err := b.OpenSession(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Version() != "2" || b.Info().Version != "2" {
		t.Fatalf("new session pinned %s, Info %s; want 2", fresh.Version(), b.Info().Version)
	}
	if _, err := fresh.S1Logits(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if got := versionsOf(srv, "tiny-window"); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("window calls went to versions %v", got)
	}
	if got := versionsOf(srv, "tiny-window_s2"); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("window_s2 calls went to versions %v", got)
	}
	if got := metricValue(t, reg, "kronos_triton_model_version", map[string]string{"model": "tiny"}); got != 2 {
		t.Fatalf("kronos_triton_model_version = %v", got)
	}

	// Version 1 goes away: the old session fails retryably.
	srv.SetReady("tiny-window", "1", false)
	_, err = old.S1Logits(ctx, ws)
	if infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("old session after unload: %v, want KindUnavailable", err)
	}
}

// TestLoadOverrides sends a config override and a file override: the fake
// receives the config as JSON (parsed strictly, as Triton does) and the
// file under its version.
func TestLoadOverrides(t *testing.T) {
	var got map[string][]byte
	srv, emb, man := fakeTriton(t, kronostest.Tiny, tritontest.Options{Explicit: true,
		LoadFiles: func(model, version string, files map[string][]byte) (tritontest.Model, error) {
			got = files
			return nil, nil
		}}, modelconfig.Params{})
	_ = emb
	b, _ := client(t, srv.Addr(), Options{})
	ctx := testCtx(t)
	cfg, err := modelconfig.Build(man, modelconfig.Window, modelconfig.CPU, modelconfig.Params{KeepVersions: 1})
	if err != nil {
		t.Fatal(err)
	}
	onnx := []byte("model bytes")
	if err := b.Load(ctx, "tiny-window", LoadOptions{Config: cfg, Files: map[string][]byte{"3/model.onnx": onnx}}); err != nil {
		t.Fatal(err)
	}
	if string(got["model.onnx"]) != string(onnx) {
		t.Fatalf("fake got files %v", got)
	}
	idx, err := b.Index(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var ready []string
	for _, m := range idx {
		if m.Name == "tiny-window" {
			ready = append(ready, m.Version)
		}
	}
	if !slices.Equal(ready, []string{"3"}) {
		t.Fatalf("ready versions of tiny-window after the load: %v (latest{1} keeps only 3)", ready)
	}
	// The JSON we send is what Triton parses: proto field names.
	j, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(cfg)
	if !strings.Contains(string(j), `"max_batch_size"`) || !strings.Contains(string(j), `"dynamic_batching"`) {
		t.Fatalf("config JSON does not use proto field names: %s", j)
	}
}

// TestIndexReadyUnload checks readiness against the model state.
func TestIndexReadyUnload(t *testing.T) {
	srv, _, _ := fakeTriton(t, kronostest.Tiny, tritontest.Options{Explicit: true}, modelconfig.Params{})
	b, _ := client(t, srv.Addr(), Options{})
	ctx := testCtx(t)
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	idx, err := b.Index(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != 4 || idx[0] != (ModelState{Name: "tiny-decoder", Version: "1", State: "READY"}) {
		t.Fatalf("index %+v", idx)
	}
	if err := b.Unload(ctx, "tiny-window_s2", false); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(ctx); infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("Ready after unload: %v, want KindUnavailable", err)
	}
	if err := b.Load(ctx, "tiny-window_s2", LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready after reload: %v", err)
	}
	// Health comes from grpc.health.v1.
	srv.SetHook(func(_ context.Context, method string, _ any) error {
		if method == "Check" {
			return status.Error(codes.Unavailable, "Server not ready")
		}
		return nil
	})
	if err := b.Ready(ctx); infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("Ready with failing health: %v", err)
	}
}

// TestServerKilledMidLoadAndRecovery kills the server while a model load
// is in progress: the load fails with KindUnavailable, forecasts fail with
// KindUnavailable while it is down, and everything works again once it is
// back on the same address (the shared connection reconnects by itself).
func TestServerKilledMidLoadAndRecovery(t *testing.T) {
	srv, _, _ := fakeTriton(t, kronostest.Tiny, tritontest.Options{Explicit: true}, modelconfig.Params{})
	b, _ := client(t, srv.Addr(), Options{ControlTimeout: 2 * time.Second})
	ctx := testCtx(t)
	inLoad := make(chan struct{})
	srv.SetHook(func(ctx context.Context, method string, _ any) error {
		if method == "RepositoryModelLoad" {
			close(inLoad)
			<-ctx.Done() // a long TensorRT build...
			return status.FromContextError(ctx.Err()).Err()
		}
		return nil
	})
	loadErr := make(chan error, 1)
	go func() { loadErr <- b.Load(ctx, "tiny-window", LoadOptions{}) }()
	<-inLoad
	addr := srv.Addr()
	srv.Stop() // ... when the server dies
	if err := <-loadErr; infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("load during the crash: %v, want KindUnavailable", err)
	}
	ws := windowsOf([]int{8}, 16, 16)
	s, err := b.NewSession(ctx, 1)
	if err != nil {
		t.Fatal(err) // the pinned version is still known
	}
	if _, err := s.S1Logits(ctx, ws); infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("forecast while down: %v, want KindUnavailable", err)
	}
	if err := b.Ready(ctx); infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("Ready while down: %v", err)
	}

	srv.SetHook(nil)
	if _, err := srv.StartAt(addr); err != nil {
		t.Fatal(err)
	}
	for {
		err := b.Ready(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Triton never became ready again: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s, err = b.NewSession(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.S1Logits(ctx, ws); err != nil {
		t.Fatalf("forecast after recovery: %v", err)
	}
}

// TestDescribe checks what New learns from Triton.
func TestDescribe(t *testing.T) {
	srv, _, man := fakeTriton(t, kronostest.Tiny, tritontest.Options{}, modelconfig.Params{})
	b, _ := client(t, srv.Addr(), Options{})
	info := b.Info()
	want := infer.ModelInfo{Name: "tiny", Version: "1", Checkpoint: man.Checkpoint, TokenizerCheckpoint: man.TokenizerCheckpoint,
		ModelVersion: man.ModelVersion, TokenizerVersion: man.TokenizerVersion, S1Bits: 4, S2Bits: 4, DModel: 32,
		MaxContext: 64, Backend: "triton", Device: "cpu"}
	if info != want {
		t.Fatalf("Info\n%+v, want\n%+v", info, want)
	}
	if got := b.Models(); !slices.Equal(got, []string{"tiny-encoder", "tiny-decoder", "tiny-window", "tiny-window_s2"}) {
		t.Fatalf("Models %v", got)
	}

	// A window model without the contract's next_s1 input is rejected.
	bad := tritontest.New(tritontest.Options{})
	for _, r := range modelconfig.TritonRoles {
		cfg, _ := modelconfig.Build(man, r, modelconfig.CPU, modelconfig.Params{})
		if r == modelconfig.WindowS2 {
			cfg.Input = cfg.Input[:4]
		}
		bad.AddModel(cfg, "1", nil, true)
	}
	if _, err := bad.Start(); err != nil {
		t.Fatal(err)
	}
	defer bad.Stop()
	_, err := New(testCtx(t), Options{URL: bad.Addr(), Model: "tiny", Logger: quiet})
	if infer.KindOf(err) != infer.KindInternal || !strings.Contains(err.Error(), `no input "next_s1"`) {
		t.Fatalf("New against a bad window_s2: %v", err)
	}
}
