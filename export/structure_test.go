package export

import (
	"fmt"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// TestWeightProducts counts the products with a weight initializer in each
// predictor graph: the step graph (bound by reading its weights) runs q/k/v,
// w1/w3 and the dependency layer's k/v as one product each; the sequence
// graphs keep one product per Linear layer. It also checks that the RoPE
// tables are built once per graph.
func TestWeightProducts(t *testing.T) {
	m := loadModel(t, nano)
	nl := m.PredCfg.NLayers
	for _, tc := range []struct {
		role     graphs.Role
		products int
	}{
		// per layer: qkv, out_proj, w13, w2; then proj_s1 and dep k/v.
		{graphs.Step, 4*nl + 2},
		// per layer: q, k, v, out_proj, w1, w3, w2; then proj_s1, dep k, dep v.
		{graphs.Prefill, 7*nl + 3},
		// out_proj, proj_s2.
		{graphs.S2, 2},
	} {
		mp, err := m.Graph(tc.role)
		if err != nil {
			t.Fatal(err)
		}
		gr := mp.GetGraph()
		inits := map[string]bool{}
		for _, in := range gr.GetInitializer() {
			inits[in.GetName()] = true
		}
		products, cos := 0, 0
		for _, n := range gr.GetNode() {
			switch n.GetOpType() {
			case "MatMul", "Gemm":
				if inits[n.GetInput()[1]] {
					products++
				}
			case "Cos":
				cos++
			}
		}
		if products != tc.products {
			t.Errorf("%s: %d weight products, want %d", tc.role, products, tc.products)
		}
		if tc.role != graphs.S2 && cos != 1 {
			t.Errorf("%s: %d Cos nodes, want one RoPE table per graph", tc.role, cos)
		}
	}
}

// TestPrefillChunks compares the prefill graph (causal attention in query
// blocks, see attend) with the same graph without blocks, for windows
// shorter than, equal to and longer than the number of blocks (empty
// blocks included) and for a right-padded batch: every output must agree.
func TestPrefillChunks(t *testing.T) {
	needORT(t)
	m := loadModel(t, tiny)
	sessions := map[int]*session{}
	for _, n := range []int{1, prefillChunks, 3} {
		g, err := m.prefillChunked(n)
		if err != nil {
			t.Fatal(err)
		}
		mp, err := g.model(nil)
		if err != nil {
			t.Fatal(err)
		}
		sessions[n] = newSession(t, mp)
	}
	cc := loadCase(t, tiny, "short")
	full := initialWindow(cc, 0)
	prefix := func(n int) window {
		return window{s1: full.s1[:n], s2: full.s2[:n], stamp: full.stamp[:n*infer.StampWidth]}
	}
	for _, batch := range [][]int{{1}, {2}, {3}, {5}, {48}, {1, 3}, {2, 7, 5}} {
		var ws []window
		for _, n := range batch {
			ws = append(ws, prefix(n))
		}
		in := prefillInputs(ws, 0)
		want := sessions[1].run(t, in)
		for n, s := range sessions {
			if n == 1 {
				continue
			}
			got := s.run(t, in)
			for name, w := range want {
				ref := make([]float64, len(w.f32))
				for i, v := range w.f32 {
					ref[i] = float64(v)
				}
				compare(t, fmt.Sprintf("lengths %v, %d blocks: %s", batch, n, name), got[name].f32, ref, 1e-5)
			}
		}
	}
}
