package export

// Stateless window graphs for the Triton backend (triton/, docs/triton.md).
// Kept in this separate file by the triton engineer; the graphs reuse the
// prefill and s2 building blocks unchanged.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxpb"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

// TritonRoles are the graphs the Triton backend serves, in addition to the
// five roles of internal/graphs that the embedded backend uses.
var TritonRoles = []graphs.Role{modelconfig.Window, modelconfig.WindowS2}

// WindowGraph builds one of the stateless predictor graphs the Triton
// backend calls at every step (no KV cache travels over gRPC):
//
//	window:    s1, s2 [B,T], stamp [B,T,5], last [B] -> s1_logits [B,V1]
//	window_s2: the same + next_s1 [B] -> s2_logits [B,V2]
//
// window is the prefill computation with the s1 logits as its only output.
// window_s2 runs the same transformer, then the dependency-aware layer for
// the chosen s1 id over positions 0..last of each row (right padding is
// masked out), then the s2 head: exactly what prefill + s2 compute, in one
// call.
func (m *Model) WindowGraph(role graphs.Role) (*onnxpb.ModelProto, error) {
	var withS2 bool
	switch role {
	case modelconfig.Window:
	case modelconfig.WindowS2:
		withS2 = true
	default:
		return nil, infer.Errorf(infer.KindInvalid, "export: %q is not a window graph", role)
	}
	g, err := m.window(withS2)
	if err == nil && g.err != nil {
		err = g.err
	}
	if err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "export %s", role)
	}
	mp, err := g.model([][2]string{
		{"kronos.role", string(role)},
		{"kronos.model_version", m.Predictor.Version()},
		{"kronos.tokenizer_version", m.Tokenizer.Version()},
	})
	if err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "export %s", role)
	}
	return mp, nil
}

func (m *Model) window(withS2 bool) (*graph, error) {
	c := m.PredCfg
	d, gd := c.DModel, c.DModel/graphs.DepHeads
	name := "kronos_window"
	if withS2 {
		name = "kronos_window_s2"
	}
	g := newGraph(name)
	w := &weights{ck: m.Predictor}
	b, t := dynamic(dimBatch), dynamic(dimSeq)
	s1 := g.input(graphs.InS1, i64T, b, t)
	s2 := g.input(graphs.InS2, i64T, b, t)
	stamp := g.input(graphs.InStamp, i64T, b, t, fixed(infer.StampWidth))
	last := g.input(graphs.InLast, i64T, b)
	var next string
	if withS2 {
		next = g.input(modelconfig.InNextS1, i64T, b)
	}
	seq := g.newSequence(s1)
	x, err := m.embed(g, s1, s2, stamp)
	if err != nil {
		return nil, err
	}
	for l := 0; l < c.NLayers; l++ {
		p := fmt.Sprintf("transformer.%d", l)
		done := g.in(p)
		x = g.block(w, x, p, d, c.FFDim, func(h string) string {
			out, _, _ := g.causalAttention(w, h, m.attn(l), seq.pos, seq.mask, seq.ropes)
			return out
		})
		done()
	}
	h := g.rmsNorm(w, x, "norm.weight", d)
	hl := g.op("GatherND", attrs(attrInt("batch_dims", 1)), h, g.op("Unsqueeze", nil, last, g.ints(1)))
	if !withS2 {
		g.output(g.linear(w, hl, "head.proj_s1", d, 1<<c.S1Bits, true), graphs.OutS1Logits, f32T, b, fixed(1<<c.S1Bits))
		return g, w.err
	}
	dk, dv := m.depKV(g, w, h)
	dk = g.heads(dk, graphs.DepHeads, gd) // [B, G, T, gd]
	dv = g.heads(dv, graphs.DepHeads, gd)

	// The dependency-aware layer as in s2(), over the window's own keys.
	v1 := 1 << c.S1Bits
	qw := w.get("dep_layer.cross_attn.q_proj.weight", d, d)
	qt := foldLinear(w.get("embedding.emb_s1.weight", v1, d), 1, qw, v1, d, d, 0, d)
	qb := w.get("dep_layer.cross_attn.q_proj.bias", d)
	for v := 0; v < v1 && len(qt) == v1*d && len(qb) == d; v++ {
		for o := 0; o < d; o++ {
			qt[v*d+o] += qb[o]
		}
	}
	defer g.in("dep_layer")()
	q := g.op("Gather", attrs(attrInt("axis", 0)), g.initF32("dep_layer.cross_attn.q_table", []int{v1, d}, qt), next)
	q = g.op("Mul", nil, q, g.scalarF32(float32(1/math.Sqrt(float64(gd)))))
	q = g.op("Reshape", nil, q, g.ints(0, graphs.DepHeads, 1, int64(gd)))
	kt := g.op("Transpose", attrs(attrInts("perm", 0, 1, 3, 2)), dk) // [B, G, gd, T]
	length := g.op("Add", nil, last, g.scalarI64(1))
	valid := g.op("Less", nil,
		g.op("Unsqueeze", nil, seq.pos, g.ints(0)), // [1, T]
		g.op("Reshape", nil, length, g.ints(-1, 1, 1, 1)))
	scores := g.op("Where", nil, valid, g.op("MatMul", nil, q, kt), g.scalarF32(float32(math.Inf(-1))))
	probs := g.op("Softmax", attrs(attrInt("axis", -1)), scores)
	o := g.op("Reshape", nil, g.op("MatMul", nil, probs, dv), g.ints(0, int64(d)))
	o = g.linear(w, o, "dep_layer.cross_attn.out_proj", d, d, true)
	y := g.rmsNorm(w, g.op("Add", nil, hl, o), "dep_layer.norm.weight", d)
	logits := g.linear(w, y, "head.proj_s2", d, 1<<c.S2Bits, true)
	g.output(logits, graphs.OutS2Logits, f32T, b, fixed(1<<c.S2Bits))
	return g, w.err
}

// WriteTritonModels adds the Triton backend's models to a repository that
// WriteRepository wrote with the same opt:
//
//	<Dir>/<Name>-window/<Version>/{model.onnx,kronos.json}
//	<Dir>/<Name>-window_s2/<Version>/{model.onnx,kronos.json}
//	<Dir>/<Name>-{encoder,decoder,window,window_s2}/config.pbtxt  CPU variant
//	<Dir>/<Name>-<every role>/configs/gpu.pbtxt                     GPU variant
//
// The configs come from triton/modelconfig (dynamic batching with a queue
// policy, version policy, kronos.* parameters; the GPU variant adds the
// TensorRT accelerator, profiles and warmups). The CPU configs of encoder
// and decoder replace WriteRepository's; prefill, step and s2 (used only
// by the embedded backend) keep theirs and get a GPU variant. p tunes the
// configs; its zero value gives the documented defaults.
func WriteTritonModels(ctx context.Context, m *Model, opt Options, p modelconfig.Params) error {
	opt, err := opt.withDefaults()
	if err != nil {
		return err
	}
	for _, role := range TritonRoles {
		if err := ctx.Err(); err != nil {
			return infer.FromContext(err)
		}
		mp, err := m.WindowGraph(role)
		if err != nil {
			return err
		}
		onnx, err := Marshal(mp)
		if err != nil {
			return infer.Wrap(infer.KindInternal, err, "export %s: marshal", role)
		}
		man, err := json.MarshalIndent(m.Manifest(role, opt), "", "  ")
		if err != nil {
			return infer.Wrap(infer.KindInternal, err, "export %s: manifest", role)
		}
		vdir := filepath.Join(opt.Dir, graphs.ModelName(opt.Name, role), opt.Version)
		if err := writeFile(filepath.Join(vdir, ModelFile), onnx); err != nil {
			return infer.Wrap(infer.KindInternal, err, "export %s", role)
		}
		if err := writeFile(filepath.Join(vdir, ManifestFile), append(man, '\n')); err != nil {
			return infer.Wrap(infer.KindInternal, err, "export %s", role)
		}
	}
	for _, role := range modelconfig.AllRoles {
		man := m.Manifest(role, opt)
		dir := filepath.Join(opt.Dir, graphs.ModelName(opt.Name, role))
		variants := []modelconfig.Variant{modelconfig.GPU}
		if slices.Contains(modelconfig.TritonRoles, role) {
			variants = append(variants, modelconfig.CPU)
		}
		for _, v := range variants {
			cfg, err := modelconfig.Build(&man, role, v, p)
			if err != nil {
				return infer.Wrap(infer.KindInternal, err, "export %s", role)
			}
			path := filepath.Join(dir, modelconfig.ConfigFile)
			if v == modelconfig.GPU {
				path = filepath.Join(dir, modelconfig.GPUConfigFile)
			}
			if err := writeFile(path, modelconfig.Marshal(cfg)); err != nil {
				return infer.Wrap(infer.KindInternal, err, "export %s", role)
			}
		}
	}
	return nil
}
