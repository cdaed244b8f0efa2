package export

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxpb"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

// TestWindowGraphsConformance feeds windows of different lengths, padded
// further with junk, to the window graphs: each row's s1 logits (window)
// and s2 logits for the reference's first s1 id (window_s2) must match the
// reference's step 0, as prefill + s2 do.
func TestWindowGraphsConformance(t *testing.T) {
	needORT(t)
	m := loadModel(t, tiny)
	graph := func(r graphs.Role) *session {
		mp, err := m.WindowGraph(r)
		if err != nil {
			t.Fatal(err)
		}
		return newSession(t, mp)
	}
	win, win2 := graph(modelconfig.Window), graph(modelconfig.WindowS2)
	var ws []window
	var s1l, s2l []float64
	var next []int64
	for _, cs := range []string{"short", "slide", "long_ctx", "batch3"} {
		cc := loadCase(t, tiny, cs)
		for r := 0; r < cc.MB.Rows; r++ {
			ws = append(ws, initialWindow(cc, r))
			s1l = append(s1l, cc.MB.InitialS1Logits[r]...)
			s2l = append(s2l, cc.MB.InitialS2Logits[r]...)
			next = append(next, cc.MB.InitialS1Argmax[r])
		}
	}
	in := prefillInputs(ws, 70)
	out := win.run(t, in)
	compare(t, "window s1_logits", out[graphs.OutS1Logits].f32, s1l, 1e-4)
	in[modelconfig.InNextS1] = i64Tensor(next, int64(len(next)))
	out = win2.run(t, in)
	compare(t, "window_s2 s2_logits", out[graphs.OutS2Logits].f32, s2l, 1e-4)
}

// TestWriteTritonModels writes the Triton models next to the five graphs
// and checks every Triton config (both variants) against its graph.
func TestWriteTritonModels(t *testing.T) {
	m := loadModel(t, tiny)
	opt := Options{Dir: t.TempDir(), Name: "tiny", MaxContext: 64}
	if err := WriteRepository(context.Background(), m, opt); err != nil {
		t.Fatal(err)
	}
	if err := WriteTritonModels(context.Background(), m, opt, modelconfig.Params{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range modelconfig.TritonRoles {
		dir := filepath.Join(opt.Dir, graphs.ModelName("tiny", r))
		raw, err := os.ReadFile(filepath.Join(dir, "1", ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		var mp onnxpb.ModelProto
		if err := proto.Unmarshal(raw, &mp); err != nil {
			t.Fatal(err)
		}
		if _, err := graphs.ReadManifest(filepath.Join(dir, "1", ManifestFile)); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{modelconfig.ConfigFile, modelconfig.GPUConfigFile} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := modelconfig.Parse(b)
			if err != nil {
				t.Fatalf("%s/%s: %v", dir, f, err)
			}
			if err := modelconfig.CheckONNX(cfg, &mp); err != nil {
				t.Errorf("%s/%s: %v", dir, f, err)
			}
		}
	}
}
