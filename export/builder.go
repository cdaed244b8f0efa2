package export

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxpb"
)

// Element types of graph inputs, outputs and initializers.
const (
	f32T = onnxpb.TensorProto_FLOAT
	i64T = onnxpb.TensorProto_INT64
)

// dim is one axis of a declared input or output shape: a fixed size, or a
// symbolic (dynamic) dimension when param is set.
type dim struct {
	size  int64
	param string
}

// fixed and dynamic build dims.
func fixed(n int) dim         { return dim{size: int64(n)} }
func dynamic(name string) dim { return dim{param: name} }
func (d dim) isDynamic() bool { return d.param != "" }

// graph builds one ONNX graph node by node. Nodes are appended in
// topological order (every helper only consumes values that already exist),
// and every name is derived from a counter and the current scope, so the
// same sequence of calls always produces the same bytes.
//
// Errors are sticky: the first failure is kept in err, later calls go on
// building a graph that is then discarded, so graph code reads straight
// through and checks g.err once (model refuses to wrap a failed graph).
type graph struct {
	name    string
	nodes   []*onnxpb.NodeProto
	inits   []*onnxpb.TensorProto
	inputs  []*onnxpb.ValueInfoProto
	outputs []*onnxpb.ValueInfoProto

	used   map[string]bool   // every value name in use
	consts map[string]string // constant key -> initializer name (lookup only)
	scope  string
	seq    int
	err    error

	// fuse makes Linear layers that share an input run as one wide product
	// (see linears). It pays where the products are bound by reading the
	// weights (one position per row: the step graph). Over whole sequences
	// the products are bound by arithmetic, and the Split that separates
	// the parts again would only add a copy, so sequence graphs leave it
	// off.
	fuse bool
	// causalChunks > 1 splits causal attention into that many query
	// blocks (see attend); chunks caches the block bounds and mask slices.
	causalChunks int
	chunks       map[string][]string
}

func newGraph(name string) *graph {
	return &graph{name: name, used: map[string]bool{}, consts: map[string]string{}}
}

// fail records the first error.
func (g *graph) fail(format string, args ...any) {
	if g.err == nil {
		g.err = fmt.Errorf("graph %s: "+format, append([]any{g.name}, args...)...)
	}
}

// in sets the scope that prefixes node and value names until the returned
// function restores the previous one:
//
//	defer g.in("encoder.0.attn")()
func (g *graph) in(scope string) func() {
	prev := g.scope
	if prev != "" {
		scope = prev + "/" + scope
	}
	g.scope = scope
	return func() { g.scope = prev }
}

// claim reserves a value name, failing on duplicates.
func (g *graph) claim(name string) string {
	if g.used[name] {
		g.fail("duplicate value name %q", name)
	}
	g.used[name] = true
	return name
}

// node appends one operator call with nout fresh outputs and returns their
// names.
func (g *graph) node(op string, inputs []string, nout int, attrs ...*onnxpb.AttributeProto) []string {
	g.seq++
	name := op + "_" + strconv.Itoa(g.seq)
	if g.scope != "" {
		name = g.scope + "/" + name
	}
	outs := make([]string, nout)
	for i := range outs {
		if nout == 1 {
			outs[i] = g.claim(name)
		} else {
			outs[i] = g.claim(name + ":" + strconv.Itoa(i))
		}
	}
	for _, in := range inputs {
		if in != "" && !g.used[in] {
			g.fail("node %s: input %q is not defined", name, in)
		}
	}
	g.nodes = append(g.nodes, &onnxpb.NodeProto{
		Name:      proto.String(name),
		OpType:    proto.String(op),
		Input:     inputs,
		Output:    outs,
		Attribute: attrs,
	})
	return outs
}

// op appends a single-output node.
func (g *graph) op(op string, attrs []*onnxpb.AttributeProto, inputs ...string) string {
	return g.node(op, inputs, 1, attrs...)[0]
}

// rename gives the node output value a new name (used to make an internal
// value a graph output without an Identity copy). Every node that already
// consumes value is updated.
func (g *graph) rename(value, to string) string {
	if !g.used[value] {
		g.fail("rename: %q is not defined", value)
		return to
	}
	for _, t := range g.inits {
		if t.GetName() == value {
			g.fail("rename: %q is an initializer", value)
			return to
		}
	}
	for _, vi := range g.inputs {
		if vi.GetName() == value {
			g.fail("rename: %q is a graph input", value)
			return to
		}
	}
	g.claim(to)
	delete(g.used, value)
	for _, n := range g.nodes {
		for i, s := range n.Input {
			if s == value {
				n.Input[i] = to
			}
		}
		for i, s := range n.Output {
			if s == value {
				n.Output[i] = to
			}
		}
	}
	return to
}

func valueInfo(name string, t onnxpb.TensorProto_DataType, shape []dim) *onnxpb.ValueInfoProto {
	sh := &onnxpb.TensorShapeProto{}
	for _, d := range shape {
		if d.isDynamic() {
			sh.Dim = append(sh.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.param}})
		} else {
			sh.Dim = append(sh.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.size}})
		}
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(t)),
			Shape:    sh,
		}}},
	}
}

// input declares a graph input.
func (g *graph) input(name string, t onnxpb.TensorProto_DataType, shape ...dim) string {
	g.claim(name)
	g.inputs = append(g.inputs, valueInfo(name, t, shape))
	return name
}

// output declares value (renamed to name when they differ) a graph output.
func (g *graph) output(value, name string, t onnxpb.TensorProto_DataType, shape ...dim) {
	if value != name {
		value = g.rename(value, name)
	}
	g.outputs = append(g.outputs, valueInfo(value, t, shape))
}

// initF32 adds a float32 initializer stored as raw little-endian bytes.
func (g *graph) initF32(name string, shape []int, data []float32) string {
	if numel(shape) != len(data) {
		g.fail("initializer %s: %d values for shape %v", name, len(data), shape)
		return name
	}
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return g.addInit(name, shape, f32T, raw)
}

// initI64 adds an int64 initializer.
func (g *graph) initI64(name string, shape []int, data []int64) string {
	if numel(shape) != len(data) {
		g.fail("initializer %s: %d values for shape %v", name, len(data), shape)
		return name
	}
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return g.addInit(name, shape, i64T, raw)
}

func (g *graph) addInit(name string, shape []int, t onnxpb.TensorProto_DataType, raw []byte) string {
	g.claim(name)
	d := make([]int64, len(shape))
	for i, s := range shape {
		d[i] = int64(s)
	}
	g.inits = append(g.inits, &onnxpb.TensorProto{
		Name:     proto.String(name),
		Dims:     d,
		DataType: proto.Int32(int32(t)),
		RawData:  raw,
	})
	return name
}

func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

// ints is a constant int64 vector (shapes, axes, split sizes), shared by
// every node that uses the same values.
func (g *graph) ints(v ...int64) string {
	key := "i64" + fmt.Sprint(v)
	if name, ok := g.consts[key]; ok {
		return name
	}
	name := g.initI64(constName(key), []int{len(v)}, v)
	g.consts[key] = name
	return name
}

// scalarI64 is a constant int64 scalar (0-d tensor).
func (g *graph) scalarI64(v int64) string {
	key := "i64s" + strconv.FormatInt(v, 10)
	if name, ok := g.consts[key]; ok {
		return name
	}
	name := g.initI64(constName(key), nil, []int64{v})
	g.consts[key] = name
	return name
}

// scalarF32 is a constant float32 scalar (0-d tensor).
func (g *graph) scalarF32(v float32) string {
	key := "f32s" + strconv.FormatUint(uint64(math.Float32bits(v)), 16)
	if name, ok := g.consts[key]; ok {
		return name
	}
	name := g.initF32(constName("f32s"+formatF32(v)), nil, []float32{v})
	g.consts[key] = name
	return name
}

func formatF32(v float32) string {
	switch {
	case math.IsInf(float64(v), -1):
		return "-inf"
	case math.IsInf(float64(v), 1):
		return "inf"
	}
	return strconv.FormatFloat(float64(v), 'g', -1, 32)
}

func constName(key string) string {
	r := strings.NewReplacer("[", "(", "]", ")", " ", ",")
	return "const/" + r.Replace(key)
}

// Attribute helpers.

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrs(a ...*onnxpb.AttributeProto) []*onnxpb.AttributeProto { return a }

// model wraps the graph into a ModelProto (opset 17, IR 8).
func (g *graph) model(meta [][2]string) (*onnxpb.ModelProto, error) {
	if g.err != nil {
		return nil, g.err
	}
	m := &onnxpb.ModelProto{
		IrVersion:       proto.Int64(graphs.IRVersion),
		ProducerName:    proto.String(ProducerName),
		ProducerVersion: proto.String(ProducerVersion),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(graphs.Opset)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String(g.name),
			Node:        g.nodes,
			Initializer: g.inits,
			Input:       g.inputs,
			Output:      g.outputs,
		},
	}
	for _, kv := range meta {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(kv[0]), Value: proto.String(kv[1])})
	}
	return m, nil
}

// Marshal serialises a model deterministically.
func Marshal(m *onnxpb.ModelProto) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}
