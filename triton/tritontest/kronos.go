package tritontest

import (
	"context"
	"fmt"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

// KronosModels serves the four graphs the Triton client calls from an
// infer.Backend (normally the embedded ONNX Runtime backend on the real
// exported model):
//
//   - encoder and decoder run the backend's Encode and Decode;
//   - window un-pads every row with `last` and runs a fresh session's
//     S1Logits (the prefill graph);
//   - window_s2 does the same, then S2Logits with next_s1 (prefill + the
//     s2 graph).
//
// So window and window_s2 compose the embedded prefill and s2 graphs: the
// same computation as the exported window graphs (which tests also serve
// directly on ONNX Runtime), from an independent path.
func KronosModels(b infer.Backend) map[graphs.Role]Model {
	info := b.Info()
	v1, v2 := int64(1)<<info.S1Bits, int64(1)<<info.S2Bits
	return map[graphs.Role]Model{
		graphs.Encoder: ModelFunc(func(ctx context.Context, in map[string]*Tensor) (map[string]*Tensor, error) {
			x := in[graphs.InX]
			rows, length := x.Shape[0], x.Shape[1]
			q, err := b.Encode(ctx, x.F32(), int(rows), int(length))
			if err != nil {
				return nil, modelErr(err)
			}
			d := int64(len(q)) / (rows * length)
			return map[string]*Tensor{graphs.OutQuant: F32Tensor([]int64{rows, length, d}, q)}, nil
		}),
		graphs.Decoder: ModelFunc(func(ctx context.Context, in map[string]*Tensor) (map[string]*Tensor, error) {
			s1, s2 := in[graphs.InS1], in[graphs.InS2]
			rows, width := s1.Shape[0], s1.Shape[1]
			x, err := b.Decode(ctx, s1.I64(), s2.I64(), int(rows), int(width))
			if err != nil {
				return nil, modelErr(err)
			}
			return map[string]*Tensor{graphs.OutX: F32Tensor([]int64{rows, width, infer.CandleWidth}, x)}, nil
		}),
		modelconfig.Window: ModelFunc(func(ctx context.Context, in map[string]*Tensor) (map[string]*Tensor, error) {
			l, _, err := runWindow(ctx, b, in, nil)
			if err != nil {
				return nil, err
			}
			return map[string]*Tensor{graphs.OutS1Logits: F32Tensor([]int64{int64(len(l)) / v1, v1}, l)}, nil
		}),
		modelconfig.WindowS2: ModelFunc(func(ctx context.Context, in map[string]*Tensor) (map[string]*Tensor, error) {
			_, l, err := runWindow(ctx, b, in, in[modelconfig.InNextS1].I64())
			if err != nil {
				return nil, err
			}
			return map[string]*Tensor{graphs.OutS2Logits: F32Tensor([]int64{int64(len(l)) / v2, v2}, l)}, nil
		}),
	}
}

// runWindow un-pads the window inputs and runs a fresh session: S1Logits,
// then S2Logits when next is not nil.
func runWindow(ctx context.Context, b infer.Backend, in map[string]*Tensor, next []int64) (s1l, s2l []float32, err error) {
	s1, s2, st, last := in[graphs.InS1], in[graphs.InS2], in[graphs.InStamp].I64(), in[graphs.InLast]
	rows, t := int(s1.Shape[0]), int(s1.Shape[1])
	if len(last.Shape) != 1 || int(last.Shape[0]) != rows {
		return nil, nil, invalid("last has shape %v for %d rows", last.Shape, rows)
	}
	a, c, ls := s1.I64(), s2.I64(), last.I64()
	ws := make([]infer.Window, rows)
	for r := range rows {
		n := int(ls[r]) + 1
		if n < 1 || n > t {
			return nil, nil, invalid("last[%d] = %d outside [0, %d)", r, ls[r], t)
		}
		ws[r] = infer.Window{S1: a[r*t : r*t+n], S2: c[r*t : r*t+n], Stamps: st[r*t*infer.StampWidth : (r*t+n)*infer.StampWidth]}
	}
	sess, err := b.NewSession(ctx, rows)
	if err != nil {
		return nil, nil, modelErr(err)
	}
	defer sess.Close()
	if s1l, err = sess.S1Logits(ctx, ws); err != nil {
		return nil, nil, modelErr(err)
	}
	if next != nil {
		if s2l, err = sess.S2Logits(ctx, next); err != nil {
			return nil, nil, modelErr(err)
		}
	}
	return s1l, s2l, nil
}

// modelErr turns a backend error into the status Triton would send:
// invalid inputs are INVALID_ARGUMENT, the rest an internal error.
func modelErr(err error) error {
	if infer.KindOf(err) == infer.KindInvalid {
		return invalid("%v", err)
	}
	return fmt.Errorf("%w", err)
}

// AddKronos adds version of the Kronos model described by man to s: the
// four Triton models with the CPU configs the exporter writes
// (modelconfig.Build) and KronosModels(b) behind them.
func AddKronos(s *Server, man *graphs.Manifest, version string, b infer.Backend, p modelconfig.Params, ready bool) error {
	return AddKronosModels(s, man, version, KronosModels(b), p, ready)
}

// AddKronosModels is AddKronos with the models given per role (e.g. the
// exported window graphs on ONNX Runtime instead of the composed ones).
func AddKronosModels(s *Server, man *graphs.Manifest, version string, models map[graphs.Role]Model, p modelconfig.Params, ready bool) error {
	for _, r := range modelconfig.TritonRoles {
		if models[r] == nil {
			return fmt.Errorf("tritontest: no model for %s", r)
		}
		cfg, err := modelconfig.Build(man, r, modelconfig.CPU, p)
		if err != nil {
			return err
		}
		s.AddModel(cfg, version, models[r], ready)
	}
	return nil
}
