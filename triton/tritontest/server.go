// Package tritontest is a fake Triton server for tests: a Go gRPC server
// that speaks the KServe v2 protocol of triton/inferencepb (the same
// messages and status codes as Triton) and runs models supplied by the test,
// normally the real exported Kronos graphs on the embedded ONNX Runtime
// backend (see Kronos). It emulates what the Triton client relies on:
// version policies and explicit model control (load, unload, index,
// readiness), request validation against the model config (names,
// datatypes, shapes with the batch dimension and reshape, max_batch_size,
// raw contents), a bounded queue answering UNAVAILABLE "Exceeds maximum
// queue size", the standard gRPC health service, and a hook for injecting
// faults into any RPC.
//
// It is meant for tests only; nothing in production imports it.
package tritontest

import (
	"context"
	"fmt"
	"net"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
)

// Model is one servable model version. Infer gets the request's inputs
// (reshaped as the config says, e.g. [B,1] -> [B]) by name and returns at
// least the outputs the request asked for.
type Model interface {
	Infer(ctx context.Context, in map[string]*Tensor) (map[string]*Tensor, error)
}

// ModelFunc adapts a function to Model.
type ModelFunc func(ctx context.Context, in map[string]*Tensor) (map[string]*Tensor, error)

// Infer calls f.
func (f ModelFunc) Infer(ctx context.Context, in map[string]*Tensor) (map[string]*Tensor, error) {
	return f(ctx, in)
}

// Hook runs before every RPC with its method name ("ModelInfer",
// "RepositoryModelLoad", ...; "Check" for health) and request. A non-nil
// error (use status.Error for a gRPC code) is returned to the client
// instead of running the RPC. A hook may block, e.g. until ctx is done.
type Hook func(ctx context.Context, method string, req any) error

// Options configure a Server.
type Options struct {
	// Explicit emulates --model-control-mode=explicit: models added with
	// ready=false stay unloaded until RepositoryModelLoad. Without it,
	// load and unload fail as in Triton's default mode.
	Explicit bool
	// Hook injects faults (may be nil; see also Server.SetHook).
	Hook Hook
	// MaxConcurrent is the number of requests per model that execute at
	// once (default 1, like one model instance); further requests wait in
	// the model's queue, bounded by its config's max_queue_size.
	MaxConcurrent int
	// LoadFiles builds a model version from file overrides of a load
	// ("file:<version>/<name>" parameters, keyed without the prefix). Nil:
	// file overrides are rejected with INVALID_ARGUMENT.
	LoadFiles func(model, version string, files map[string][]byte) (Model, error)
}

// Server is a fake Triton. Create it with New, add models, then Start.
type Server struct {
	pb.UnimplementedGRPCInferenceServiceServer
	opt Options

	mu     sync.Mutex
	models map[string]*model
	hook   Hook
	calls  []Call

	srv    *grpc.Server
	health *health.Server
	addr   string
}

type model struct {
	cfg      *pb.ModelConfig
	versions map[string]Model // in the repository
	ready    map[string]bool  // loaded versions
	slots    chan struct{}
	queued   int
}

// Call records one ModelInfer the server received.
type Call struct {
	Model, Version string
	Shapes         map[string][]int64
}

// New returns a stopped server.
func New(opt Options) *Server {
	if opt.MaxConcurrent <= 0 {
		opt.MaxConcurrent = 1
	}
	return &Server{opt: opt, models: map[string]*model{}, hook: opt.Hook}
}

// SetHook replaces the fault hook (nil removes it).
func (s *Server) SetHook(h Hook) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// AddModel puts a version of a model into the fake repository; cfg is the
// model's config (the first one added is kept). ready loads the version at
// once (as --load-model or the default mode would).
func (s *Server) AddModel(cfg *pb.ModelConfig, version string, m Model, ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.models[cfg.GetName()]
	if md == nil {
		md = &model{cfg: proto.Clone(cfg).(*pb.ModelConfig), versions: map[string]Model{}, ready: map[string]bool{},
			slots: make(chan struct{}, s.opt.MaxConcurrent)}
		s.models[cfg.GetName()] = md
	}
	md.versions[version] = m
	if ready {
		md.ready[version] = true
	}
}

// SetReady marks a model version ready or not (as a crashed instance
// would), without the load/unload protocol.
func (s *Server) SetReady(name, version string, ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if md := s.models[name]; md != nil {
		md.ready[version] = ready
	}
}

// Wrap replaces every version of a model by wrap(version's model), e.g. to
// hold or slow its executions.
func (s *Server) Wrap(name string, wrap func(Model) Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if md := s.models[name]; md != nil {
		for v, m := range md.versions {
			md.versions[v] = wrap(m)
		}
	}
}

// Queued returns the number of requests waiting in a model's queue.
func (s *Server) Queued(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if md := s.models[name]; md != nil {
		return md.queued
	}
	return 0
}

// Calls returns the ModelInfer calls received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Start serves on a new loopback port and returns its address.
func (s *Server) Start() (string, error) { return s.StartAt("127.0.0.1:0") }

// StartAt serves on addr (e.g. the address of a stopped server, to
// emulate a restart).
func (s *Server) StartAt(addr string) (string, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(s.intercept), grpc.MaxRecvMsgSize(1<<30), grpc.MaxSendMsgSize(1<<30))
	pb.RegisterGRPCInferenceServiceServer(srv, s)
	h := health.NewServer()
	healthpb.RegisterHealthServer(srv, h)
	s.mu.Lock()
	s.srv, s.health, s.addr = srv, h, lis.Addr().String()
	s.mu.Unlock()
	go srv.Serve(lis)
	return lis.Addr().String(), nil
}

// Addr is the address of the last Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Stop kills the server: connections close and RPCs in flight fail on the
// client with UNAVAILABLE (like a crashed tritonserver). The models stay,
// so StartAt(Addr()) brings the same server back.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, h := s.srv, s.health
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		h.Shutdown()
		srv.Stop()
	}
}

func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	s.mu.Lock()
	h := s.hook
	s.mu.Unlock()
	if h != nil {
		if err := h(ctx, path.Base(info.FullMethod), req); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// lookup returns a model and the version a request addresses (highest
// ready one for ""), with Triton's errors.
func (s *Server) lookup(name, version string) (*model, string, Model, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.models[name]
	if md == nil {
		return nil, "", nil, status.Errorf(codes.NotFound, "Request for unknown model: '%s' is not found", name)
	}
	if version == "" {
		version = highest(md.readyVersions())
		if version == "" {
			return nil, "", nil, status.Errorf(codes.NotFound, "Request for unknown model: '%s' has no available versions", name)
		}
	}
	m, ok := md.versions[version]
	if !ok {
		return nil, "", nil, status.Errorf(codes.NotFound, "Request for unknown model: '%s' version %s is not found", name, version)
	}
	if !md.ready[version] {
		return nil, "", nil, status.Errorf(codes.Unavailable, "Request for unknown model: '%s' version %s is not at ready state", name, version)
	}
	return md, version, m, nil
}

func (md *model) readyVersions() []string {
	var vs []string
	for v, ok := range md.ready {
		if ok {
			vs = append(vs, v)
		}
	}
	sort.Slice(vs, func(i, j int) bool { a, _ := strconv.Atoi(vs[i]); b, _ := strconv.Atoi(vs[j]); return a < b })
	return vs
}

func highest(vs []string) string {
	best, name := -1, ""
	for _, v := range vs {
		if n, err := strconv.Atoi(v); err == nil && n > best {
			best, name = n, v
		}
	}
	return name
}

// ServerLive implements the RPC.
func (s *Server) ServerLive(context.Context, *pb.ServerLiveRequest) (*pb.ServerLiveResponse, error) {
	return &pb.ServerLiveResponse{Live: true}, nil
}

// ServerReady implements the RPC.
func (s *Server) ServerReady(context.Context, *pb.ServerReadyRequest) (*pb.ServerReadyResponse, error) {
	return &pb.ServerReadyResponse{Ready: true}, nil
}

// ModelReady implements the RPC.
func (s *Server) ModelReady(_ context.Context, req *pb.ModelReadyRequest) (*pb.ModelReadyResponse, error) {
	_, _, _, err := s.lookup(req.GetName(), req.GetVersion())
	return &pb.ModelReadyResponse{Ready: err == nil}, nil
}

// ModelMetadata implements the RPC: versions lists the ready versions.
func (s *Server) ModelMetadata(_ context.Context, req *pb.ModelMetadataRequest) (*pb.ModelMetadataResponse, error) {
	md, _, _, err := s.lookup(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := md.cfg
	resp := &pb.ModelMetadataResponse{Name: cfg.GetName(), Versions: md.readyVersions(), Platform: "onnxruntime_onnx"}
	shape := func(dims []int64) []int64 {
		if cfg.GetMaxBatchSize() > 0 {
			return append([]int64{-1}, dims...)
		}
		return slices.Clone(dims)
	}
	for _, in := range cfg.GetInput() {
		resp.Inputs = append(resp.Inputs, &pb.ModelMetadataResponse_TensorMetadata{
			Name: in.GetName(), Datatype: apiType(in.GetDataType()), Shape: shape(in.GetDims())})
	}
	for _, out := range cfg.GetOutput() {
		resp.Outputs = append(resp.Outputs, &pb.ModelMetadataResponse_TensorMetadata{
			Name: out.GetName(), Datatype: apiType(out.GetDataType()), Shape: shape(out.GetDims())})
	}
	return resp, nil
}

// ModelConfig implements the RPC.
func (s *Server) ModelConfig(_ context.Context, req *pb.ModelConfigRequest) (*pb.ModelConfigResponse, error) {
	md, _, _, err := s.lookup(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &pb.ModelConfigResponse{Config: proto.Clone(md.cfg).(*pb.ModelConfig)}, nil
}

// RepositoryIndex implements the RPC: one entry per version in the
// repository (READY or UNAVAILABLE), sorted by name and version.
func (s *Server) RepositoryIndex(_ context.Context, req *pb.RepositoryIndexRequest) (*pb.RepositoryIndexResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &pb.RepositoryIndexResponse{}
	names := make([]string, 0, len(s.models))
	for n := range s.models {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		md := s.models[n]
		var vs []string
		for v := range md.versions {
			vs = append(vs, v)
		}
		sort.Slice(vs, func(i, j int) bool { a, _ := strconv.Atoi(vs[i]); b, _ := strconv.Atoi(vs[j]); return a < b })
		for _, v := range vs {
			state, reason := "READY", ""
			if !md.ready[v] {
				state, reason = "UNAVAILABLE", "unloaded"
			}
			if req.GetReady() && state != "READY" {
				continue
			}
			resp.Models = append(resp.Models, &pb.RepositoryIndexResponse_ModelIndex{Name: n, Version: v, State: state, Reason: reason})
		}
	}
	return resp, nil
}

// RepositoryModelLoad implements the RPC: it applies a "config" override
// (JSON, unknown fields rejected as by Triton) and "file:" overrides (via
// Options.LoadFiles), then makes the versions the version policy selects
// ready and unloads the others.
func (s *Server) RepositoryModelLoad(_ context.Context, req *pb.RepositoryModelLoadRequest) (*pb.RepositoryModelLoadResponse, error) {
	if !s.opt.Explicit {
		return nil, status.Error(codes.Unavailable, "explicit model load / unload is not allowed if polling is enabled")
	}
	var cfg *pb.ModelConfig
	files := map[string]map[string][]byte{} // version -> name -> content
	for k, p := range req.GetParameters() {
		switch {
		case k == "config":
			cfg = &pb.ModelConfig{}
			if err := protojson.Unmarshal([]byte(p.GetStringParam()), cfg); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "failed to parse config override: %v", err)
			}
		case strings.HasPrefix(k, "file:"):
			rel := strings.TrimPrefix(k, "file:")
			v, name, ok := strings.Cut(rel, "/")
			if _, err := strconv.Atoi(v); !ok || err != nil || name == "" || strings.Contains(rel, "..") {
				return nil, status.Errorf(codes.InvalidArgument, "invalid file override %q", k)
			}
			if files[v] == nil {
				files[v] = map[string][]byte{}
			}
			files[v][name] = p.GetBytesParam()
		default:
			return nil, status.Errorf(codes.InvalidArgument, "unrecognized load parameter %q", k)
		}
	}
	if len(files) > 0 && cfg == nil {
		return nil, status.Error(codes.InvalidArgument, "failed to load '"+req.GetModelName()+"', config must be provided with file overrides")
	}
	built := map[string]Model{}
	for v, fs := range files {
		if s.opt.LoadFiles == nil {
			return nil, status.Error(codes.InvalidArgument, "file overrides are not supported by this fake")
		}
		m, err := s.opt.LoadFiles(req.GetModelName(), v, fs)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "failed to load '%s' version %s: %v", req.GetModelName(), v, err)
		}
		built[v] = m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.models[req.GetModelName()]
	if md == nil {
		return nil, status.Errorf(codes.Internal, "failed to load '%s', failed to poll from model repository", req.GetModelName())
	}
	if cfg != nil {
		md.cfg = cfg
	}
	for v, m := range built {
		md.versions[v] = m
	}
	var all []string
	for v := range md.versions {
		all = append(all, v)
	}
	sort.Slice(all, func(i, j int) bool { a, _ := strconv.Atoi(all[i]); b, _ := strconv.Atoi(all[j]); return a > b })
	keep := len(all)
	if l := md.cfg.GetVersionPolicy().GetLatest(); l != nil {
		keep = max(1, int(l.GetNumVersions()))
	}
	md.ready = map[string]bool{}
	for i, v := range all {
		if i < keep {
			md.ready[v] = true
		}
	}
	return &pb.RepositoryModelLoadResponse{}, nil
}

// RepositoryModelUnload implements the RPC.
func (s *Server) RepositoryModelUnload(_ context.Context, req *pb.RepositoryModelUnloadRequest) (*pb.RepositoryModelUnloadResponse, error) {
	if !s.opt.Explicit {
		return nil, status.Error(codes.Unavailable, "explicit model load / unload is not allowed if polling is enabled")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.models[req.GetModelName()]
	if md == nil {
		return nil, status.Errorf(codes.InvalidArgument, "failed to unload '%s', model is not loaded", req.GetModelName())
	}
	md.ready = map[string]bool{}
	return &pb.RepositoryModelUnloadResponse{}, nil
}

// ModelInfer implements the RPC: validation against the config, queueing,
// then the model.
func (s *Server) ModelInfer(ctx context.Context, req *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	md, version, m, err := s.lookup(req.GetModelName(), req.GetModelVersion())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	cfg := md.cfg
	s.mu.Unlock()
	in, batch, err := validate(cfg, req)
	if err != nil {
		return nil, err
	}
	rec := Call{Model: req.GetModelName(), Version: version, Shapes: map[string][]int64{}}
	for _, t := range req.GetInputs() {
		rec.Shapes[t.GetName()] = slices.Clone(t.GetShape())
	}
	s.mu.Lock()
	s.calls = append(s.calls, rec)
	s.mu.Unlock()

	if err := s.acquire(ctx, md); err != nil {
		return nil, err
	}
	out, err := m.Infer(ctx, in)
	<-md.slots
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Errorf(codes.Internal, "onnx runtime error: %v", err)
	}
	resp := &pb.ModelInferResponse{ModelName: req.GetModelName(), ModelVersion: version, Id: req.GetId()}
	want := req.GetOutputs()
	if len(want) == 0 {
		for _, o := range cfg.GetOutput() {
			want = append(want, &pb.ModelInferRequest_InferRequestedOutputTensor{Name: o.GetName()})
		}
	}
	for _, w := range want {
		oc := findOutput(cfg, w.GetName())
		if oc == nil {
			return nil, status.Errorf(codes.InvalidArgument, "unexpected inference output '%s' for model '%s'", w.GetName(), req.GetModelName())
		}
		t := out[w.GetName()]
		if t == nil {
			return nil, status.Errorf(codes.Internal, "model did not produce output '%s'", w.GetName())
		}
		if cfg.GetMaxBatchSize() > 0 && (len(t.Shape) == 0 || t.Shape[0] != batch) {
			return nil, status.Errorf(codes.Internal, "output '%s' has shape %v for batch %d", w.GetName(), t.Shape, batch)
		}
		resp.Outputs = append(resp.Outputs, &pb.ModelInferResponse_InferOutputTensor{Name: w.GetName(), Datatype: t.Datatype, Shape: t.Shape})
		resp.RawOutputContents = append(resp.RawOutputContents, t.Raw)
	}
	return resp, nil
}

// acquire waits for an execution slot of md, rejecting the request when
// the queue is full (Triton's message) and giving up when ctx ends.
func (s *Server) acquire(ctx context.Context, md *model) error {
	select {
	case md.slots <- struct{}{}:
		return nil
	default:
	}
	s.mu.Lock()
	limit := md.cfg.GetDynamicBatching().GetDefaultQueuePolicy().GetMaxQueueSize()
	if limit > 0 && md.queued >= int(limit) {
		s.mu.Unlock()
		return status.Error(codes.Unavailable, "Exceeds maximum queue size")
	}
	md.queued++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		md.queued--
		s.mu.Unlock()
	}()
	select {
	case md.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func findOutput(cfg *pb.ModelConfig, name string) *pb.ModelOutput {
	for _, o := range cfg.GetOutput() {
		if o.GetName() == name {
			return o
		}
	}
	return nil
}

// validate checks a request against cfg as Triton does and returns the
// inputs by name (reshaped) and the batch size.
func validate(cfg *pb.ModelConfig, req *pb.ModelInferRequest) (map[string]*Tensor, int64, error) {
	name := req.GetModelName()
	if len(req.GetRawInputContents()) > 0 && len(req.GetRawInputContents()) != len(req.GetInputs()) {
		return nil, 0, status.Errorf(codes.InvalidArgument, "expected %d raw input contents, got %d", len(req.GetInputs()), len(req.GetRawInputContents()))
	}
	in := map[string]*Tensor{}
	batch := int64(-1)
	for i, t := range req.GetInputs() {
		if t.GetContents() != nil {
			return nil, 0, status.Errorf(codes.InvalidArgument, "contents field must not be specified when using raw_input_contents for '%s' for model '%s'", t.GetName(), name)
		}
		var ic *pb.ModelInput
		for _, c := range cfg.GetInput() {
			if c.GetName() == t.GetName() {
				ic = c
			}
		}
		if ic == nil {
			return nil, 0, status.Errorf(codes.InvalidArgument, "unexpected inference input '%s' for model '%s'", t.GetName(), name)
		}
		if want := apiType(ic.GetDataType()); t.GetDatatype() != want {
			return nil, 0, status.Errorf(codes.InvalidArgument, "inference input '%s' data-type is '%s', but model '%s' expects '%s'", t.GetName(), t.GetDatatype(), name, want)
		}
		shape := t.GetShape()
		dims := ic.GetDims()
		if cfg.GetMaxBatchSize() > 0 {
			if len(shape) == 0 {
				return nil, 0, status.Errorf(codes.InvalidArgument, "input '%s' has no batch dimension", t.GetName())
			}
			if shape[0] > int64(cfg.GetMaxBatchSize()) {
				return nil, 0, status.Errorf(codes.InvalidArgument, "inference request batch-size must be <= %d for '%s'", cfg.GetMaxBatchSize(), name)
			}
			if batch >= 0 && shape[0] != batch {
				return nil, 0, status.Errorf(codes.InvalidArgument, "inputs have different batch sizes for '%s'", name)
			}
			batch = shape[0]
			shape = shape[1:]
		}
		if !matches(shape, dims) {
			return nil, 0, status.Errorf(codes.InvalidArgument, "unexpected shape for input '%s' for model '%s'. Expected %v, got %v", t.GetName(), name, dims, t.GetShape())
		}
		if i >= len(req.GetRawInputContents()) {
			return nil, 0, status.Errorf(codes.InvalidArgument, "unable to find data for input tensor '%s' for model '%s'", t.GetName(), name)
		}
		raw := req.GetRawInputContents()[i]
		if want := numel(t.GetShape()) * elemSize(t.GetDatatype()); int64(len(raw)) != want {
			return nil, 0, status.Errorf(codes.InvalidArgument, "input byte size mismatch for input '%s' for model '%s'. Expected %d, got %d", t.GetName(), name, want, len(raw))
		}
		full := t.GetShape()
		if r := ic.GetReshape(); r != nil {
			full = append(full[:len(full)-len(shape):len(full)-len(shape)], r.GetShape()...)
		}
		in[t.GetName()] = &Tensor{Datatype: t.GetDatatype(), Shape: slices.Clone(full), Raw: raw}
	}
	for _, c := range cfg.GetInput() {
		if _, ok := in[c.GetName()]; !ok && !c.GetOptional() {
			return nil, 0, status.Errorf(codes.InvalidArgument, "expected %d inputs but got %d inputs for model '%s'", len(cfg.GetInput()), len(in), name)
		}
	}
	return in, batch, nil
}

func matches(shape, dims []int64) bool {
	if len(shape) != len(dims) {
		return false
	}
	for i, d := range dims {
		if d >= 0 && shape[i] != d {
			return false
		}
	}
	return true
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

func elemSize(dt string) int64 {
	switch dt {
	case "BOOL", "INT8", "UINT8":
		return 1
	case "INT16", "UINT16", "FP16", "BF16":
		return 2
	case "INT32", "UINT32", "FP32":
		return 4
	}
	return 8
}

// apiType is the inference-API name of a config data type.
func apiType(t pb.DataType) string {
	if t == pb.DataType_TYPE_STRING {
		return "BYTES"
	}
	return strings.TrimPrefix(t.String(), "TYPE_")
}

// invalid is the INVALID_ARGUMENT error models return for inputs they
// cannot use.
func invalid(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, fmt.Sprintf(format, args...))
}
