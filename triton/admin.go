package triton

import (
	"context"
	"path"
	"strings"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

// Admin is what the gateway's admin API and readiness probe need from the
// Triton backend. Triton must run with --model-control-mode=explicit for
// Load and Unload (otherwise they fail with KindInternal, from
// UNIMPLEMENTED/UNAVAILABLE). None of these calls go through the circuit
// breaker, so health checks and admin calls never trip it.
type Admin interface {
	// Models returns the Triton model names the backend uses.
	Models() []string
	// Index lists the repository (every model and version Triton knows,
	// with state READY, UNAVAILABLE, LOADING, ...; only ready ones when
	// readyOnly).
	Index(ctx context.Context, readyOnly bool) ([]ModelState, error)
	// Load loads or reloads one Triton model (synchronous: returns when the
	// model is ready or failed). See LoadOptions for config and file
	// overrides. New forecasts move to the new version; forecasts in
	// flight keep the version they pinned.
	Load(ctx context.Context, model string, o LoadOptions) error
	// Unload unloads one Triton model (asynchronous on the server).
	Unload(ctx context.Context, model string, unloadDependents bool) error
	// ModelReady reports whether a model version ("" = per policy) is
	// ready.
	ModelReady(ctx context.Context, model, version string) (bool, error)
	// Ready returns nil when Triton is ready and every model the backend
	// uses is ready at the version new forecasts pin, else an error of
	// KindUnavailable saying what is not.
	Ready(ctx context.Context) error
}

var _ Admin = (*Backend)(nil)

// ModelState is one entry of the repository index.
type ModelState struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// LoadOptions are the optional overrides of a load (Triton's model
// repository extension).
type LoadOptions struct {
	// Config replaces config.pbtxt for this load (sent as the "config"
	// parameter, JSON with the proto field names).
	Config *pb.ModelConfig
	// Files provides model files by path inside the model folder, e.g.
	// "2/model.onnx" (sent as "file:2/model.onnx"); Triton then loads from
	// a temporary copy. Config is required with Files.
	Files map[string][]byte
}

// Index lists the repository.
func (b *Backend) Index(ctx context.Context, readyOnly bool) ([]ModelState, error) {
	var resp *pb.RepositoryIndexResponse
	err := b.control(ctx, "RepositoryIndex", func(cctx context.Context) (err error) {
		resp, err = b.rpc.RepositoryIndex(cctx, &pb.RepositoryIndexRequest{Ready: readyOnly})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]ModelState, 0, len(resp.GetModels()))
	for _, m := range resp.GetModels() {
		out = append(out, ModelState{Name: m.GetName(), Version: m.GetVersion(), State: m.GetState(), Reason: m.GetReason()})
	}
	return out, nil
}

// Load loads or reloads model (a Triton model name such as
// "kronos-nano-window"), then refreshes the version new forecasts pin.
func (b *Backend) Load(ctx context.Context, model string, o LoadOptions) error {
	if model == "" {
		return infer.Errorf(infer.KindInvalid, "triton: load: empty model name")
	}
	params := map[string]*pb.ModelRepositoryParameter{}
	if o.Config != nil {
		j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(o.Config)
		if err != nil {
			return infer.Wrap(infer.KindInvalid, err, "triton: load %s: config", model)
		}
		params["config"] = &pb.ModelRepositoryParameter{ParameterChoice: &pb.ModelRepositoryParameter_StringParam{StringParam: string(j)}}
	}
	if len(o.Files) > 0 && o.Config == nil {
		return infer.Errorf(infer.KindInvalid, "triton: load %s: file overrides need a config", model)
	}
	for p, content := range o.Files {
		clean := path.Clean(p)
		if p == "" || clean != p || path.IsAbs(p) || strings.HasPrefix(clean, "..") {
			return infer.Errorf(infer.KindInvalid, "triton: load %s: file path %q must be relative and clean, e.g. 2/model.onnx", model, p)
		}
		params["file:"+p] = &pb.ModelRepositoryParameter{ParameterChoice: &pb.ModelRepositoryParameter_BytesParam{BytesParam: content}}
	}
	err := b.timed(ctx, "RepositoryModelLoad", b.opt.LoadTimeout, func(cctx context.Context) error {
		_, err := b.rpc.RepositoryModelLoad(cctx, &pb.RepositoryModelLoadRequest{ModelName: model, Parameters: params})
		return err
	})
	b.stale.Store(true)
	if err != nil {
		return err
	}
	b.opt.Logger.Info("triton: model loaded", "model", model, "config_override", o.Config != nil, "files", len(o.Files))
	return nil
}

// Unload unloads model and marks the pinned version for refresh.
func (b *Backend) Unload(ctx context.Context, model string, unloadDependents bool) error {
	if model == "" {
		return infer.Errorf(infer.KindInvalid, "triton: unload: empty model name")
	}
	params := map[string]*pb.ModelRepositoryParameter{}
	if unloadDependents {
		params["unload_dependents"] = &pb.ModelRepositoryParameter{ParameterChoice: &pb.ModelRepositoryParameter_BoolParam{BoolParam: true}}
	}
	err := b.control(ctx, "RepositoryModelUnload", func(cctx context.Context) error {
		_, err := b.rpc.RepositoryModelUnload(cctx, &pb.RepositoryModelUnloadRequest{ModelName: model, Parameters: params})
		return err
	})
	b.stale.Store(true)
	if err == nil {
		b.opt.Logger.Info("triton: model unloaded", "model", model)
	}
	return err
}

// ModelReady asks Triton whether a model version is ready.
func (b *Backend) ModelReady(ctx context.Context, model, version string) (bool, error) {
	var ready bool
	err := b.control(ctx, "ModelReady", func(cctx context.Context) error {
		r, err := b.rpc.ModelReady(cctx, &pb.ModelReadyRequest{Name: model, Version: version})
		ready = r.GetReady()
		return err
	})
	return ready, err
}

// Live checks the standard gRPC health service (SERVING iff Triton is
// ready).
func (b *Backend) Live(ctx context.Context) error {
	var st healthpb.HealthCheckResponse_ServingStatus
	err := b.control(ctx, "HealthCheck", func(cctx context.Context) error {
		r, err := b.health.Check(cctx, &healthpb.HealthCheckRequest{})
		st = r.GetStatus()
		return err
	})
	if err != nil {
		return err
	}
	if st != healthpb.HealthCheckResponse_SERVING {
		return infer.Errorf(infer.KindUnavailable, "triton: health status %s", st)
	}
	return nil
}

// Ready checks Triton's health and that every model the backend uses is
// ready at the version new forecasts pin (resolving it again if it is
// stale).
func (b *Backend) Ready(ctx context.Context) error {
	if err := b.Live(ctx); err != nil {
		return err
	}
	d, err := b.resolve(ctx)
	if err != nil {
		return err
	}
	for _, r := range modelconfig.TritonRoles {
		ok, err := b.ModelReady(ctx, b.names[r], d.version)
		if err != nil {
			return err
		}
		if !ok {
			b.stale.Store(true)
			return infer.Errorf(infer.KindUnavailable, "triton: %s version %s is not ready", b.names[r], d.version)
		}
	}
	return nil
}
