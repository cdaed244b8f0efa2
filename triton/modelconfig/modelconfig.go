package modelconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
)

// Stateless predictor graphs served by Triton (in addition to the five
// roles of internal/graphs). TODO(graphs): move these into internal/graphs
// once the exporter writes them.
const (
	// Window: s1, s2 i64 [B,T], stamp i64 [B,T,5], last i64 [B] ->
	// s1_logits f32 [B,V1] at position last. The prefill computation
	// without the cache outputs; rows are right-padded.
	Window graphs.Role = "window"
	// WindowS2: the Window inputs + next_s1 i64 [B] -> s2_logits f32
	// [B,V2]: the dependency-aware layer over positions 0..last (padding
	// masked out) for the chosen s1 id, then the s2 head.
	WindowS2 graphs.Role = "window_s2"
	// InNextS1 is the s1 id chosen for each row (WindowS2).
	InNextS1 = "next_s1"
)

// TritonRoles are the graphs the Triton backend calls; the gateway loads
// only these in explicit model-control mode.
var TritonRoles = []graphs.Role{graphs.Encoder, graphs.Decoder, Window, WindowS2}

// AllRoles are the roles a config can be written for.
var AllRoles = []graphs.Role{graphs.Encoder, graphs.Decoder, graphs.Prefill, graphs.Step, graphs.S2, Window, WindowS2}

// Keys of the model parameters that describe the Kronos model to the
// Triton client (ModelConfig RPC). Triton's onnxruntime backend reads only
// the keys it knows (intra_op_thread_count, ...) and ignores these.
const (
	ParamModel               = "kronos.model"
	ParamRole                = "kronos.role"
	ParamMaxContext          = "kronos.max_context"
	ParamModelVersion        = "kronos.model_version"
	ParamTokenizerVersion    = "kronos.tokenizer_version"
	ParamCheckpoint          = "kronos.checkpoint"
	ParamTokenizerCheckpoint = "kronos.tokenizer_checkpoint"
	ParamDModel              = "kronos.d_model"
	ParamS1Bits              = "kronos.s1_bits"
	ParamS2Bits              = "kronos.s2_bits"
)

// File names in a Triton model folder.
const (
	ConfigFile    = "config.pbtxt"
	GPUConfigName = "gpu" // tritonserver --model-config-name=gpu
	GPUConfigFile = "configs/gpu.pbtxt"
)

// Tensor is one configured input or output. Dims exclude the batch
// dimension (-1 = variable). A tensor that is only [B] in the graph has
// Dims [1] and Reshape [] (Triton's convention); requests send it as [B,1].
type Tensor struct {
	Name    string
	Type    pb.DataType
	Dims    []int64
	Reshape bool // reshape: { shape: [ ] }
}

// GraphDims are the graph sizes a config needs, from a manifest.
type GraphDims struct {
	D      int // tokenizer code width s1_bits+s2_bits
	V1, V2 int // vocabulary sizes
	DModel int
	Heads  int // predictor heads
	Layers int // predictor layers
}

// DimsOf derives GraphDims from a manifest.
func DimsOf(m *graphs.Manifest) (GraphDims, error) {
	p, t := m.Predictor, m.Tokenizer
	if p.DModel <= 0 || p.NHeads <= 0 || p.NLayers <= 0 || p.DModel%p.NHeads != 0 ||
		p.DModel%graphs.DepHeads != 0 || p.S1Bits <= 0 || p.S2Bits <= 0 || t.S1Bits+t.S2Bits <= 0 {
		return GraphDims{}, fmt.Errorf("modelconfig: manifest of %s: unusable predictor/tokenizer configuration", m.Model)
	}
	return GraphDims{D: t.S1Bits + t.S2Bits, V1: 1 << p.S1Bits, V2: 1 << p.S2Bits,
		DModel: p.DModel, Heads: p.NHeads, Layers: p.NLayers}, nil
}

// RoleIO returns the configured inputs and outputs of a role, in the order
// the graphs declare them.
func RoleIO(r graphs.Role, d GraphDims) (in, out []Tensor, err error) {
	i64, f32 := pb.DataType_TYPE_INT64, pb.DataType_TYPE_FP32
	batchOnly := func(name string) Tensor { return Tensor{Name: name, Type: i64, Dims: []int64{1}, Reshape: true} }
	seq := func(name string) Tensor { return Tensor{Name: name, Type: i64, Dims: []int64{-1}} }
	stamp := Tensor{Name: graphs.InStamp, Type: i64, Dims: []int64{-1, infer.StampWidth}}
	hd, gd := int64(0), int64(d.DModel/graphs.DepHeads)
	if d.Heads > 0 {
		hd = int64(d.DModel / d.Heads)
	}
	h, g := int64(d.Heads), int64(graphs.DepHeads)
	switch r {
	case graphs.Encoder:
		return []Tensor{{Name: graphs.InX, Type: f32, Dims: []int64{-1, infer.CandleWidth}}},
			[]Tensor{{Name: graphs.OutQuant, Type: f32, Dims: []int64{-1, int64(d.D)}}}, nil
	case graphs.Decoder:
		return []Tensor{seq(graphs.InS1), seq(graphs.InS2)},
			[]Tensor{{Name: graphs.OutX, Type: f32, Dims: []int64{-1, infer.CandleWidth}}}, nil
	case Window, WindowS2, graphs.Prefill:
		in = []Tensor{seq(graphs.InS1), seq(graphs.InS2), stamp, batchOnly(graphs.InLast)}
		switch r {
		case Window:
			return in, []Tensor{{Name: graphs.OutS1Logits, Type: f32, Dims: []int64{int64(d.V1)}}}, nil
		case WindowS2:
			return append(in, batchOnly(InNextS1)), []Tensor{{Name: graphs.OutS2Logits, Type: f32, Dims: []int64{int64(d.V2)}}}, nil
		}
		out = []Tensor{{Name: graphs.OutS1Logits, Type: f32, Dims: []int64{int64(d.V1)}},
			{Name: graphs.OutHidden, Type: f32, Dims: []int64{int64(d.DModel)}}}
		for l := 0; l < d.Layers; l++ {
			out = append(out, Tensor{Name: graphs.Key(l), Type: f32, Dims: []int64{h, -1, hd}},
				Tensor{Name: graphs.Value(l), Type: f32, Dims: []int64{h, -1, hd}})
		}
		out = append(out, Tensor{Name: graphs.OutDepKey, Type: f32, Dims: []int64{g, -1, gd}},
			Tensor{Name: graphs.OutDepValue, Type: f32, Dims: []int64{g, -1, gd}})
		return in, out, nil
	case graphs.Step:
		in = []Tensor{batchOnly(graphs.InS1), batchOnly(graphs.InS2),
			{Name: graphs.InStamp, Type: i64, Dims: []int64{infer.StampWidth}}, batchOnly(graphs.InPos)}
		for l := 0; l < d.Layers; l++ {
			in = append(in, Tensor{Name: graphs.PastKey(l), Type: f32, Dims: []int64{h, hd, -1}},
				Tensor{Name: graphs.PastValue(l), Type: f32, Dims: []int64{h, -1, hd}})
		}
		out = []Tensor{{Name: graphs.OutS1Logits, Type: f32, Dims: []int64{int64(d.V1)}},
			{Name: graphs.OutHidden, Type: f32, Dims: []int64{int64(d.DModel)}}}
		for l := 0; l < d.Layers; l++ {
			out = append(out, Tensor{Name: graphs.Key(l), Type: f32, Dims: []int64{h, hd}},
				Tensor{Name: graphs.Value(l), Type: f32, Dims: []int64{h, hd}})
		}
		out = append(out, Tensor{Name: graphs.OutDepKey, Type: f32, Dims: []int64{g, gd}},
			Tensor{Name: graphs.OutDepValue, Type: f32, Dims: []int64{g, gd}})
		return in, out, nil
	case graphs.S2:
		return []Tensor{batchOnly(graphs.InS1), {Name: graphs.InHidden, Type: f32, Dims: []int64{int64(d.DModel)}},
				{Name: graphs.InDepKey, Type: f32, Dims: []int64{g, gd, -1}},
				{Name: graphs.InDepValue, Type: f32, Dims: []int64{g, -1, gd}}, batchOnly(graphs.InLength)},
			[]Tensor{{Name: graphs.OutS2Logits, Type: f32, Dims: []int64{int64(d.V2)}}}, nil
	}
	return nil, nil, fmt.Errorf("modelconfig: unknown role %q", r)
}

// Params tune the written configs. The zero value of a field selects the
// default named in its comment (see Defaults).
type Params struct {
	// MaxContext is the predictor's max context (default: the manifest's
	// default_max_context). It bounds the window buckets and TRT profiles.
	MaxContext int
	// MaxLength bounds encoder/decoder lengths in the TRT profiles
	// (default 2048).
	MaxLength int
	// Buckets are the padded window lengths the client sends (default:
	// multiples of 64 up to MaxContext, then MaxContext). The GPU variant
	// warms up every bucket.
	Buckets []int
	// KeepVersions is the version policy latest{num_versions} (default 2:
	// the previous version stays loaded next to a new one so that
	// forecasts pinned to it finish).
	KeepVersions int

	// CPU variant.
	CPUMaxBatch       int    // max_batch_size (default 8)
	CPUInstances      int    // KIND_CPU instance count (default 1)
	CPUIntraOpThreads int    // onnxruntime intra_op_thread_count (default 0: ORT's choice)
	CPUQueueDelayUs   uint64 // max_queue_delay_microseconds (default 500)
	CPUQueueTimeoutUs uint64 // default_timeout_microseconds (default 5s)
	CPUMaxQueue       uint32 // max_queue_size (default 64)
	CPUPreferred      []int32

	// GPU variant.
	GPUMaxBatch       int    // max_batch_size (default 32)
	GPUInstances      int    // instances per GPU (default 1)
	GPUQueueDelayUs   uint64 // default 200
	GPUQueueTimeoutUs uint64 // default 2s
	GPUMaxQueue       uint32 // default 256
	GPUPreferred      []int32
	// TRTPrecision is the TensorRT precision_mode (default "FP16"; "FP32"
	// gives the embedded backend's numerics most closely).
	TRTPrecision string
	// TRTWorkspaceBytes is max_workspace_size_bytes (default 2 GiB).
	TRTWorkspaceBytes int64
	// TRTCacheDir is trt_engine_cache_path (default
	// "/tmp/triton-trt-cache"); engines are cached per shape profile.
	TRTCacheDir string
	// DisableTRT leaves the GPU variant on plain CUDA EP.
	DisableTRT bool
}

// Defaults returns p with every zero field set to its default for
// manifest m.
func (p Params) Defaults(m *graphs.Manifest) Params {
	if p.MaxContext <= 0 {
		p.MaxContext = m.DefaultMaxContext
	}
	if p.MaxLength <= 0 {
		p.MaxLength = 2048
	}
	if len(p.Buckets) == 0 {
		p.Buckets = DefaultBuckets(p.MaxContext)
	}
	if p.KeepVersions <= 0 {
		p.KeepVersions = 2
	}
	if p.CPUMaxBatch <= 0 {
		p.CPUMaxBatch = 8
	}
	if p.CPUInstances <= 0 {
		p.CPUInstances = 1
	}
	if p.CPUQueueDelayUs == 0 {
		p.CPUQueueDelayUs = 500
	}
	if p.CPUQueueTimeoutUs == 0 {
		p.CPUQueueTimeoutUs = 5_000_000
	}
	if p.CPUMaxQueue == 0 {
		p.CPUMaxQueue = 64
	}
	if p.CPUPreferred == nil {
		p.CPUPreferred = preferred(p.CPUMaxBatch)
	}
	if p.GPUMaxBatch <= 0 {
		p.GPUMaxBatch = 32
	}
	if p.GPUInstances <= 0 {
		p.GPUInstances = 1
	}
	if p.GPUQueueDelayUs == 0 {
		p.GPUQueueDelayUs = 200
	}
	if p.GPUQueueTimeoutUs == 0 {
		p.GPUQueueTimeoutUs = 2_000_000
	}
	if p.GPUMaxQueue == 0 {
		p.GPUMaxQueue = 256
	}
	if p.GPUPreferred == nil {
		p.GPUPreferred = preferred(p.GPUMaxBatch)
	}
	if p.TRTPrecision == "" {
		p.TRTPrecision = "FP16"
	}
	if p.TRTWorkspaceBytes <= 0 {
		p.TRTWorkspaceBytes = 2 << 30
	}
	if p.TRTCacheDir == "" {
		p.TRTCacheDir = "/tmp/triton-trt-cache"
	}
	return p
}

// preferred returns the preferred batch sizes for a max batch: half and
// the full batch (e.g. [4, 8]).
func preferred(maxBatch int) []int32 {
	if maxBatch < 2 {
		return []int32{}
	}
	return []int32{int32(maxBatch / 2), int32(maxBatch)}
}

// BucketStep is the granularity of the default window buckets.
const BucketStep = 64

// DefaultBuckets returns the multiples of BucketStep below maxContext and
// maxContext itself.
func DefaultBuckets(maxContext int) []int {
	var b []int
	for t := BucketStep; t < maxContext; t += BucketStep {
		b = append(b, t)
	}
	if maxContext > 0 {
		b = append(b, maxContext)
	}
	return b
}

// Variant selects the CPU or the GPU config.
type Variant int

// Config variants.
const (
	CPU Variant = iota // config.pbtxt: KIND_CPU, onnxruntime threads
	GPU                // configs/gpu.pbtxt: KIND_GPU, TensorRT EP, FP16, profiles
)

func (v Variant) String() string {
	if v == GPU {
		return "gpu"
	}
	return "cpu"
}

// Build returns the config of one role of manifest m's model in variant v.
func Build(m *graphs.Manifest, r graphs.Role, v Variant, p Params) (*pb.ModelConfig, error) {
	d, err := DimsOf(m)
	if err != nil {
		return nil, err
	}
	p = p.Defaults(m)
	if p.MaxContext <= 0 {
		return nil, fmt.Errorf("modelconfig: %s: no max context (manifest default_max_context is 0)", m.Model)
	}
	in, out, err := RoleIO(r, d)
	if err != nil {
		return nil, err
	}
	cfg := &pb.ModelConfig{
		Name:    graphs.ModelName(m.Model, r),
		Backend: "onnxruntime",
		VersionPolicy: &pb.ModelVersionPolicy{PolicyChoice: &pb.ModelVersionPolicy_Latest_{
			Latest: &pb.ModelVersionPolicy_Latest{NumVersions: uint32(p.KeepVersions)}}},
		Parameters: map[string]*pb.ModelParameter{},
	}
	for _, t := range in {
		mi := &pb.ModelInput{Name: t.Name, DataType: t.Type, Dims: t.Dims}
		if t.Reshape {
			mi.Reshape = &pb.ModelTensorReshape{Shape: []int64{}}
		}
		cfg.Input = append(cfg.Input, mi)
	}
	for _, t := range out {
		mo := &pb.ModelOutput{Name: t.Name, DataType: t.Type, Dims: t.Dims}
		if t.Reshape {
			mo.Reshape = &pb.ModelTensorReshape{Shape: []int64{}}
		}
		cfg.Output = append(cfg.Output, mo)
	}
	meta := map[string]string{
		ParamModel: m.Model, ParamRole: string(r), ParamMaxContext: strconv.Itoa(p.MaxContext),
		ParamModelVersion: m.ModelVersion, ParamTokenizerVersion: m.TokenizerVersion,
		ParamCheckpoint: m.Checkpoint, ParamTokenizerCheckpoint: m.TokenizerCheckpoint,
		ParamDModel: strconv.Itoa(d.DModel), ParamS1Bits: strconv.Itoa(m.Predictor.S1Bits),
		ParamS2Bits: strconv.Itoa(m.Predictor.S2Bits),
	}
	for k, val := range meta {
		cfg.Parameters[k] = &pb.ModelParameter{StringValue: val}
	}
	queue := func(delay, timeout uint64, size uint32, pref []int32) *pb.ModelConfig_DynamicBatching {
		return &pb.ModelConfig_DynamicBatching{DynamicBatching: &pb.ModelDynamicBatching{
			PreferredBatchSize:        pref,
			MaxQueueDelayMicroseconds: delay,
			DefaultQueuePolicy: &pb.ModelQueuePolicy{
				TimeoutAction:              pb.ModelQueuePolicy_REJECT,
				DefaultTimeoutMicroseconds: timeout,
				AllowTimeoutOverride:       true,
				MaxQueueSize:               size,
			},
		}}
	}
	switch v {
	case CPU:
		cfg.MaxBatchSize = int32(p.CPUMaxBatch)
		cfg.InstanceGroup = []*pb.ModelInstanceGroup{{Count: int32(p.CPUInstances), Kind: pb.ModelInstanceGroup_KIND_CPU}}
		cfg.SchedulingChoice = queue(p.CPUQueueDelayUs, p.CPUQueueTimeoutUs, p.CPUMaxQueue, p.CPUPreferred)
		threads := map[string]string{
			"intra_op_thread_count": strconv.Itoa(p.CPUIntraOpThreads),
			"inter_op_thread_count": "1",
			"execution_mode":        "0",
			"enable_mem_arena":      "1",
		}
		for k, val := range threads {
			cfg.Parameters[k] = &pb.ModelParameter{StringValue: val}
		}
	case GPU:
		cfg.MaxBatchSize = int32(p.GPUMaxBatch)
		cfg.InstanceGroup = []*pb.ModelInstanceGroup{{Count: int32(p.GPUInstances), Kind: pb.ModelInstanceGroup_KIND_GPU}}
		cfg.SchedulingChoice = queue(p.GPUQueueDelayUs, p.GPUQueueTimeoutUs, p.GPUMaxQueue, p.GPUPreferred)
		if prof, ok := trtProfiles(r, in, p); ok && !p.DisableTRT {
			params := map[string]string{
				"precision_mode":           p.TRTPrecision,
				"max_workspace_size_bytes": strconv.FormatInt(p.TRTWorkspaceBytes, 10),
				"trt_engine_cache_enable":  "1",
				"trt_engine_cache_path":    p.TRTCacheDir,
				"trt_profile_min_shapes":   prof[0],
				"trt_profile_opt_shapes":   prof[1],
				"trt_profile_max_shapes":   prof[2],
			}
			cfg.Optimization = &pb.ModelOptimizationPolicy{ExecutionAccelerators: &pb.ModelOptimizationPolicy_ExecutionAccelerators{
				GpuExecutionAccelerator: []*pb.ModelOptimizationPolicy_ExecutionAccelerators_Accelerator{{Name: "tensorrt", Parameters: params}},
			}}
		}
		cfg.ModelWarmup = warmups(r, in, p)
	default:
		return nil, fmt.Errorf("modelconfig: unknown variant %d", v)
	}
	return cfg, nil
}

// seqRange returns the sequence lengths [min, opt, max] of a role's
// profile: window buckets for the predictor graphs, encoder/decoder
// lengths otherwise.
func seqRange(r graphs.Role, p Params) (lo, opt, hi int, ok bool) {
	switch r {
	case Window, WindowS2:
		b := p.Buckets
		return b[0], b[len(b)/2], b[len(b)-1], true
	case graphs.Encoder, graphs.Decoder:
		return 1, p.MaxContext, max(p.MaxLength, p.MaxContext), true
	}
	return 0, 0, 0, false
}

// trtProfiles returns the min/opt/max shape strings of the TensorRT EP
// ("name:AxB,name2:..."; shapes as the ONNX graph sees them, batch first)
// for the Triton roles.
func trtProfiles(r graphs.Role, in []Tensor, p Params) ([3]string, bool) {
	lo, opt, hi, ok := seqRange(r, p)
	if !ok {
		return [3]string{}, false
	}
	optBatch := max(1, p.GPUMaxBatch/4)
	var out [3]string
	for i, bt := range [3][2]int{{1, lo}, {optBatch, opt}, {p.GPUMaxBatch, hi}} {
		var parts []string
		for _, t := range in {
			dims := []string{strconv.Itoa(bt[0])}
			if !t.Reshape {
				for _, d := range t.Dims {
					if d < 0 {
						dims = append(dims, strconv.Itoa(bt[1]))
					} else {
						dims = append(dims, strconv.FormatInt(d, 10))
					}
				}
			}
			parts = append(parts, t.Name+":"+strings.Join(dims, "x"))
		}
		out[i] = strings.Join(parts, ",")
	}
	return out, true
}

// warmups returns one zero-data warmup sample per window bucket (batch 1)
// for the window graphs and one at max context for encoder/decoder, so a
// model is READY only after TensorRT has built its engines.
func warmups(r graphs.Role, in []Tensor, p Params) []*pb.ModelWarmup {
	var lengths []int
	switch r {
	case Window, WindowS2:
		lengths = p.Buckets
	case graphs.Encoder, graphs.Decoder:
		lengths = []int{p.MaxContext}
	default:
		return nil
	}
	var ws []*pb.ModelWarmup
	for _, n := range lengths {
		w := &pb.ModelWarmup{Name: fmt.Sprintf("b1_t%d", n), BatchSize: 1, Inputs: map[string]*pb.ModelWarmup_Input{}}
		for _, t := range in {
			dims := make([]int64, len(t.Dims))
			for i, d := range t.Dims {
				if d < 0 {
					d = int64(n)
				}
				dims[i] = d
			}
			w.Inputs[t.Name] = &pb.ModelWarmup_Input{DataType: t.Type, Dims: dims,
				InputDataType: &pb.ModelWarmup_Input_ZeroData{ZeroData: true}}
		}
		ws = append(ws, w)
	}
	return ws
}

// WriteModel writes the CPU config (config.pbtxt) and the GPU config
// (configs/gpu.pbtxt) of role r into the Triton model folder dir
// (<repo>/<model>-<role>).
func WriteModel(dir string, m *graphs.Manifest, r graphs.Role, p Params) error {
	for _, v := range []Variant{CPU, GPU} {
		cfg, err := Build(m, r, v, p)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, ConfigFile)
		if v == GPU {
			path = filepath.Join(dir, GPUConfigFile)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, Marshal(cfg), 0o644); err != nil {
			return err
		}
	}
	return nil
}
