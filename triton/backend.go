package triton

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

// Backend runs the Kronos graphs on a Triton server over gRPC. It
// implements infer.Backend and Admin and is safe for concurrent use. All
// calls share one *grpc.ClientConn.
type Backend struct {
	opt    Options
	conn   *grpc.ClientConn
	rpc    pb.GRPCInferenceServiceClient
	health healthpb.HealthClient
	m      *clientMetrics
	names  map[graphs.Role]string // Triton model name per role

	// cur is the description new calls use; mu serialises refreshes.
	mu     sync.Mutex
	cur    atomic.Pointer[description]
	stale  atomic.Bool
	closed atomic.Bool

	stats counters
	now   func() time.Time
}

// description is what the client knows about one resolved model version.
type description struct {
	version  string // numeric version ready for every Triton role
	at       time.Time
	info     infer.ModelInfo
	dq       int // tokenizer code width
	v1, v2   int
	maxBatch map[graphs.Role]int // 0: no batching limit known
	buckets  []int
}

// Stats counts the ModelInfer traffic of a Backend or a Session: calls and
// protobuf payload bytes (the gRPC message bodies, without HTTP/2 framing
// and headers).
type Stats struct {
	Calls         int64
	BytesSent     int64
	BytesReceived int64
}

type counters struct{ calls, sent, recv atomic.Int64 }

func (c *counters) add(sent, recv int) {
	c.calls.Add(1)
	c.sent.Add(int64(sent))
	c.recv.Add(int64(recv))
}

func (c *counters) snapshot() Stats {
	return Stats{Calls: c.calls.Load(), BytesSent: c.sent.Load(), BytesReceived: c.recv.Load()}
}

var _ infer.Backend = (*Backend)(nil)

// New connects to Triton and describes the model: the four Triton models
// (<Model>-encoder, -decoder, -window, -window_s2) must be ready in a
// common version. It fails with KindUnavailable when Triton cannot be
// reached within Options.ControlTimeout, KindNotFound when a model is
// missing and KindInternal when a model does not match the graph contract.
func New(ctx context.Context, opt Options) (*Backend, error) {
	opt = opt.withDefaults()
	if err := opt.Validate(); err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "triton")
	}
	dopts, err := dialOptions(opt)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(opt.URL, dopts...)
	if err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "triton: target %q", opt.URL)
	}
	b := &Backend{
		opt:    opt,
		conn:   conn,
		rpc:    pb.NewGRPCInferenceServiceClient(conn),
		health: healthpb.NewHealthClient(conn),
		m:      newClientMetrics(opt.Registerer),
		names:  map[graphs.Role]string{},
		now:    time.Now,
	}
	for _, r := range modelconfig.TritonRoles {
		b.names[r] = graphs.ModelName(opt.Model, r)
	}
	if _, err := b.refresh(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return b, nil
}

// dialOptions builds the connection options from opt.
func dialOptions(opt Options) ([]grpc.DialOption, error) {
	creds := insecure.NewCredentials()
	switch {
	case opt.TLSConfig != nil:
		creds = credentials.NewTLS(opt.TLSConfig)
	case opt.TLS:
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: opt.TLSServerName}
		if opt.TLSCAFile != "" {
			pem, err := os.ReadFile(opt.TLSCAFile)
			if err != nil {
				return nil, infer.Wrap(infer.KindInvalid, err, "triton: %s", EnvCAFile)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, infer.Errorf(infer.KindInvalid, "triton: %s: no PEM certificate in %s", EnvCAFile, opt.TLSCAFile)
			}
			cfg.RootCAs = pool
		}
		creds = credentials.NewTLS(cfg)
	}
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = opt.ReconnectBaseDelay, opt.ReconnectMaxDelay
	d := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opt.MaxRecvMsgBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: opt.ControlTimeout}),
	}
	if opt.KeepaliveTime > 0 {
		// Pings only while calls are in flight: Triton's default
		// permit_without_calls=false would GOAWAY idle pings.
		d = append(d, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: opt.KeepaliveTime, Timeout: 20 * time.Second, PermitWithoutStream: false,
		}))
	}
	return append(d, opt.DialOptions...), nil
}

// Info describes the model version new forecasts are pinned to.
func (b *Backend) Info() infer.ModelInfo { return b.cur.Load().info }

// Options returns the options in effect (defaults filled in).
func (b *Backend) Options() Options { return b.opt }

// Stats returns the ModelInfer traffic of the backend so far.
func (b *Backend) Stats() Stats { return b.stats.snapshot() }

// Close closes the connection; calls in flight fail with KindCanceled or
// KindUnavailable. Close is idempotent.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	return b.conn.Close()
}

// Models returns the Triton model names the backend uses, in the order
// encoder, decoder, window, window_s2.
func (b *Backend) Models() []string {
	out := make([]string, 0, len(modelconfig.TritonRoles))
	for _, r := range modelconfig.TritonRoles {
		out = append(out, b.names[r])
	}
	return out
}

// resolve returns the description new calls use, refreshing it when it is
// older than Options.VersionRefresh or marked stale.
func (b *Backend) resolve(ctx context.Context) (*description, error) {
	if b.closed.Load() {
		return nil, infer.Errorf(infer.KindUnavailable, "triton: backend is closed")
	}
	d := b.cur.Load()
	if d != nil && !b.stale.Load() && b.now().Sub(d.at) < b.opt.VersionRefresh {
		return d, nil
	}
	nd, err := b.refresh(ctx)
	if err != nil && d != nil && infer.KindOf(err) != infer.KindCanceled {
		// Keep serving the last known version; the call itself will tell
		// whether it is still there.
		b.opt.Logger.Warn("triton: model refresh failed; keeping the pinned version",
			"model", b.opt.Model, "version", d.version, "err", err)
		return d, nil
	}
	return nd, err
}

// refresh describes the highest version ready for every Triton role.
func (b *Backend) refresh(ctx context.Context) (*description, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.cur.Load(); d != nil && !b.stale.Load() && b.now().Sub(d.at) < b.opt.VersionRefresh {
		return d, nil // refreshed by a concurrent caller
	}
	meta := map[graphs.Role]*pb.ModelMetadataResponse{}
	var common []string
	for i, r := range modelconfig.TritonRoles {
		var md *pb.ModelMetadataResponse
		err := b.control(ctx, "ModelMetadata", func(cctx context.Context) (err error) {
			md, err = b.rpc.ModelMetadata(cctx, &pb.ModelMetadataRequest{Name: b.names[r]})
			return err
		})
		if err != nil {
			return nil, err
		}
		meta[r] = md
		if i == 0 {
			common = slices.Clone(md.GetVersions())
		} else {
			common = slices.DeleteFunc(common, func(v string) bool { return !slices.Contains(md.GetVersions(), v) })
		}
	}
	version := highest(common)
	if version == "" {
		return nil, infer.Errorf(infer.KindUnavailable, "triton: model %s has no version ready for all of %v", b.opt.Model, b.Models())
	}
	d := &description{version: version, at: b.now(), maxBatch: map[graphs.Role]int{}}
	var winCfg *pb.ModelConfig
	for _, r := range modelconfig.TritonRoles {
		var cr *pb.ModelConfigResponse
		err := b.control(ctx, "ModelConfig", func(cctx context.Context) (err error) {
			cr, err = b.rpc.ModelConfig(cctx, &pb.ModelConfigRequest{Name: b.names[r], Version: version})
			return err
		})
		if err != nil {
			return nil, err
		}
		d.maxBatch[r] = int(cr.GetConfig().GetMaxBatchSize())
		if r == modelconfig.Window {
			winCfg = cr.GetConfig()
		}
	}
	if err := b.describe(d, meta, winCfg); err != nil {
		return nil, err
	}
	prev := b.cur.Swap(d)
	b.stale.Store(false)
	if prev == nil || prev.version != d.version {
		b.opt.Logger.Info("triton: pinning new forecasts to model version",
			"model", b.opt.Model, "version", d.version, "model_version", d.info.ModelVersion)
		if n, err := strconv.ParseFloat(d.version, 64); err == nil {
			b.m.version.WithLabelValues(b.opt.Model).Set(n)
		}
	}
	return d, nil
}

// describe checks the metadata against the graph contract and fills d.
func (b *Backend) describe(d *description, meta map[graphs.Role]*pb.ModelMetadataResponse, win *pb.ModelConfig) error {
	want := func(r graphs.Role, tensors []*pb.ModelMetadataResponse_TensorMetadata, kind string, names map[string]string) (map[string][]int64, error) {
		got := map[string][]int64{}
		for _, t := range tensors {
			got[t.GetName()] = t.GetShape()
			if dt, ok := names[t.GetName()]; ok && dt != t.GetDatatype() {
				return nil, infer.Errorf(infer.KindInternal, "triton: %s %s %q is %s, want %s", b.names[r], kind, t.GetName(), t.GetDatatype(), dt)
			}
		}
		for n := range names {
			if _, ok := got[n]; !ok {
				return nil, infer.Errorf(infer.KindInternal, "triton: %s has no %s %q (graph contract)", b.names[r], kind, n)
			}
		}
		return got, nil
	}
	lastDim := func(r graphs.Role, shapes map[string][]int64, name string) (int, error) {
		s := shapes[name]
		if len(s) == 0 || s[len(s)-1] <= 0 {
			return 0, infer.Errorf(infer.KindInternal, "triton: %s output %q has shape %v, want a fixed last dim", b.names[r], name, s)
		}
		return int(s[len(s)-1]), nil
	}
	seqIn := map[string]string{graphs.InS1: "INT64", graphs.InS2: "INT64", graphs.InStamp: "INT64", graphs.InLast: "INT64"}
	s2In := map[string]string{graphs.InS1: "INT64", graphs.InS2: "INT64", graphs.InStamp: "INT64", graphs.InLast: "INT64", modelconfig.InNextS1: "INT64"}
	checks := []struct {
		r       graphs.Role
		in, out map[string]string
	}{
		{graphs.Encoder, map[string]string{graphs.InX: "FP32"}, map[string]string{graphs.OutQuant: "FP32"}},
		{graphs.Decoder, map[string]string{graphs.InS1: "INT64", graphs.InS2: "INT64"}, map[string]string{graphs.OutX: "FP32"}},
		{modelconfig.Window, seqIn, map[string]string{graphs.OutS1Logits: "FP32"}},
		{modelconfig.WindowS2, s2In, map[string]string{graphs.OutS2Logits: "FP32"}},
	}
	outs := map[graphs.Role]map[string][]int64{}
	for _, c := range checks {
		md := meta[c.r]
		if _, err := want(c.r, md.GetInputs(), "input", c.in); err != nil {
			return err
		}
		o, err := want(c.r, md.GetOutputs(), "output", c.out)
		if err != nil {
			return err
		}
		outs[c.r] = o
	}
	var err error
	if d.dq, err = lastDim(graphs.Encoder, outs[graphs.Encoder], graphs.OutQuant); err != nil {
		return err
	}
	if d.v1, err = lastDim(modelconfig.Window, outs[modelconfig.Window], graphs.OutS1Logits); err != nil {
		return err
	}
	if d.v2, err = lastDim(modelconfig.WindowS2, outs[modelconfig.WindowS2], graphs.OutS2Logits); err != nil {
		return err
	}
	if d.v1&(d.v1-1) != 0 || d.v2&(d.v2-1) != 0 {
		return infer.Errorf(infer.KindInternal, "triton: vocabulary sizes %d, %d are not powers of two", d.v1, d.v2)
	}
	param := func(k string) string { return win.GetParameters()[k].GetStringValue() }
	maxContext := b.opt.MaxContext
	if maxContext == 0 {
		maxContext, _ = strconv.Atoi(param(modelconfig.ParamMaxContext))
	}
	if maxContext <= 0 {
		return infer.Errorf(infer.KindInternal, "triton: %s has no %s parameter; set Options.MaxContext", b.names[modelconfig.Window], modelconfig.ParamMaxContext)
	}
	dModel, _ := strconv.Atoi(param(modelconfig.ParamDModel))
	device := "cpu"
	for _, g := range win.GetInstanceGroup() {
		if g.GetKind() == pb.ModelInstanceGroup_KIND_GPU {
			device = "gpu"
		}
	}
	d.info = infer.ModelInfo{
		Name:                b.opt.Model,
		Version:             d.version,
		Checkpoint:          param(modelconfig.ParamCheckpoint),
		TokenizerCheckpoint: param(modelconfig.ParamTokenizerCheckpoint),
		ModelVersion:        param(modelconfig.ParamModelVersion),
		TokenizerVersion:    param(modelconfig.ParamTokenizerVersion),
		S1Bits:              bits.Len(uint(d.v1)) - 1,
		S2Bits:              bits.Len(uint(d.v2)) - 1,
		DModel:              dModel,
		MaxContext:          maxContext,
		Backend:             "triton",
		Device:              device,
	}
	d.buckets = b.opt.Buckets
	if len(d.buckets) == 0 {
		d.buckets = modelconfig.DefaultBuckets(maxContext)
	}
	return nil
}

// highest returns the largest numeric version in vs ("" if none).
func highest(vs []string) string {
	best, name := int64(-1), ""
	for _, v := range vs {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > best {
			best, name = n, v
		}
	}
	return name
}

// padLen returns the bucket a sequence of n tokens is padded to: the
// smallest bucket >= n, or n itself beyond the largest.
func padLen(buckets []int, n int) int {
	for _, b := range buckets {
		if b >= n {
			return b
		}
	}
	return n
}

// control runs one control-plane RPC under Options.ControlTimeout.
func (b *Backend) control(ctx context.Context, what string, call func(context.Context) error) error {
	return b.timed(ctx, what, b.opt.ControlTimeout, call)
}

// timed runs call under a child context with the given timeout, records
// its duration and classifies its error.
func (b *Backend) timed(ctx context.Context, what string, timeout time.Duration, call func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return infer.Wrap(infer.KindOf(infer.FromContext(err)), err, "triton: %s", what)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := b.now()
	err := call(cctx)
	if err != nil {
		err = classify(ctx, err, what, b.opt.OverloadRetryAfter)
	}
	b.m.duration.WithLabelValues(what, outcome(err)).Observe(b.now().Sub(start).Seconds())
	return err
}

// outcome is the metric label of an error.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(infer.KindOf(err))
}

// infer runs one ModelInfer of role r at the pinned version and returns
// the response after checking that the pinned version answered. stats, if
// not nil, also counts the call (the session's own counters).
//
// A NOT_FOUND answer here means that the pinned version went away (a hot
// swap unloaded it under a running forecast): it is reported as
// KindUnavailable, and the next call resolves the version again.
func (b *Backend) infer(ctx context.Context, r graphs.Role, version string, req *pb.ModelInferRequest, stats *counters) (*pb.ModelInferResponse, error) {
	req.ModelName, req.ModelVersion = b.names[r], version
	what := string(r)
	if err := ctx.Err(); err != nil {
		return nil, infer.Wrap(infer.KindOf(infer.FromContext(err)), err, "triton: %s", what)
	}
	cctx, cancel := context.WithTimeout(ctx, b.opt.InferTimeout)
	start := b.now()
	resp, rerr := b.rpc.ModelInfer(cctx, req)
	cancel()
	var err error
	if rerr != nil {
		if st, ok := status.FromError(rerr); ok && st.Code() == codes.NotFound && ctx.Err() == nil {
			err = infer.Wrap(infer.KindUnavailable, rerr, "triton: %s version %s is not available (unloaded during the forecast?)", b.names[r], version)
		} else {
			err = classify(ctx, rerr, what, b.opt.OverloadRetryAfter)
		}
		if infer.KindOf(err) == infer.KindUnavailable && !strings.Contains(rerr.Error(), msgQueueTimeout) {
			// Version gone or not ready, server restarted: look again
			// before the next session (not for a mere queue timeout).
			b.stale.Store(true)
		}
	}
	b.m.duration.WithLabelValues(what, outcome(err)).Observe(b.now().Sub(start).Seconds())
	sent, recv := proto.Size(req), 0
	if resp != nil {
		recv = proto.Size(resp)
	}
	b.stats.add(sent, recv)
	if stats != nil {
		stats.add(sent, recv)
	}
	b.m.bytes.WithLabelValues("sent").Add(float64(sent))
	b.m.bytes.WithLabelValues("received").Add(float64(recv))
	if err != nil {
		return nil, err
	}
	if v := resp.GetModelVersion(); v != "" && v != version {
		return nil, infer.Errorf(infer.KindInternal, "triton: %s answered with version %s, pinned %s", b.names[r], v, version)
	}
	return resp, nil
}

// runChunks calls fn for [lo, hi) ranges of n rows of at most maxBatch rows
// (all rows when maxBatch <= 0), concurrently, and returns the first error
// after every call has returned.
func runChunks(ctx context.Context, n, maxBatch int, fn func(ctx context.Context, lo, hi int) error) error {
	if maxBatch <= 0 || n <= maxBatch {
		return fn(ctx, 0, n)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for lo := 0; lo < n; lo += maxBatch {
		hi := min(n, lo+maxBatch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, lo, hi); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return first
}

// Encode runs the tokenizer encoder (<Model>-encoder) on normalised candles
// x [rows][length][6] and returns quant_input [rows][length][D]. The length
// is right-padded to a bucket (the encoder is causal, so padding does not
// change the first length positions).
func (b *Backend) Encode(ctx context.Context, x []float32, rows, length int) ([]float32, error) {
	if rows <= 0 || length <= 0 || len(x) != rows*length*infer.CandleWidth {
		return nil, infer.Errorf(infer.KindInvalid, "triton: encode: %d values for %d rows of %d candles", len(x), rows, length)
	}
	d, err := b.resolve(ctx)
	if err != nil {
		return nil, err
	}
	t := padLen(d.buckets, length)
	out := make([]float32, rows*length*d.dq)
	err = runChunks(ctx, rows, d.maxBatch[graphs.Encoder], func(ctx context.Context, lo, hi int) error {
		n := hi - lo
		raw := make([]byte, 0, n*t*infer.CandleWidth*4)
		for r := lo; r < hi; r++ {
			raw = appendF32(raw, x[r*length*infer.CandleWidth:(r+1)*length*infer.CandleWidth])
			raw = append(raw, make([]byte, (t-length)*infer.CandleWidth*4)...)
		}
		req := &pb.ModelInferRequest{
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: graphs.InX, Datatype: "FP32", Shape: []int64{int64(n), int64(t), infer.CandleWidth}}},
			Outputs:          []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: graphs.OutQuant}},
			RawInputContents: [][]byte{raw},
		}
		resp, err := b.infer(ctx, graphs.Encoder, d.version, req, nil)
		if err != nil {
			return err
		}
		q, err := outputF32(resp, graphs.OutQuant, []int64{int64(n), int64(t), int64(d.dq)})
		if err != nil {
			return err
		}
		for r := range n {
			copy(out[(lo+r)*length*d.dq:(lo+r+1)*length*d.dq], q[r*t*d.dq:])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Decode runs the tokenizer decoder (<Model>-decoder) on ids
// [rows][width] and returns normalised candles [rows][width][6]; widths are
// right-padded to a bucket like Encode.
func (b *Backend) Decode(ctx context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	if rows <= 0 || width <= 0 || len(s1) != rows*width || len(s2) != rows*width {
		return nil, infer.Errorf(infer.KindInvalid, "triton: decode: %d/%d ids for %d rows of %d tokens", len(s1), len(s2), rows, width)
	}
	d, err := b.resolve(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkIDs("s1", s1, d.v1); err != nil {
		return nil, err
	}
	if err := checkIDs("s2", s2, d.v2); err != nil {
		return nil, err
	}
	t := padLen(d.buckets, width)
	out := make([]float32, rows*width*infer.CandleWidth)
	err = runChunks(ctx, rows, d.maxBatch[graphs.Decoder], func(ctx context.Context, lo, hi int) error {
		n := hi - lo
		pad := make([]int64, t-width)
		var r1, r2 []byte
		for r := lo; r < hi; r++ {
			r1 = appendI64(appendI64(r1, s1[r*width:(r+1)*width]), pad)
			r2 = appendI64(appendI64(r2, s2[r*width:(r+1)*width]), pad)
		}
		shape := []int64{int64(n), int64(t)}
		req := &pb.ModelInferRequest{
			Inputs: []*pb.ModelInferRequest_InferInputTensor{
				{Name: graphs.InS1, Datatype: "INT64", Shape: shape},
				{Name: graphs.InS2, Datatype: "INT64", Shape: shape},
			},
			Outputs:          []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: graphs.OutX}},
			RawInputContents: [][]byte{r1, r2},
		}
		resp, err := b.infer(ctx, graphs.Decoder, d.version, req, nil)
		if err != nil {
			return err
		}
		x, err := outputF32(resp, graphs.OutX, []int64{int64(n), int64(t), infer.CandleWidth})
		if err != nil {
			return err
		}
		for r := range n {
			copy(out[(lo+r)*width*infer.CandleWidth:(lo+r+1)*width*infer.CandleWidth], x[r*t*infer.CandleWidth:])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkIDs checks that every id is in [0, n).
func checkIDs(name string, ids []int64, n int) error {
	for i, v := range ids {
		if v < 0 || v >= int64(n) {
			return infer.Errorf(infer.KindInvalid, "triton: %s[%d] = %d outside [0, %d)", name, i, v, n)
		}
	}
	return nil
}

// stampLimits are the sizes of the five time tables.
var stampLimits = [infer.StampWidth]int64{60, 24, 7, 32, 13}

func checkStamps(row int, st []int64) error {
	for i, v := range st {
		if lim := stampLimits[i%infer.StampWidth]; v < 0 || v >= lim {
			return infer.Errorf(infer.KindInvalid, "triton: window %d stamp[%d][%d] = %d outside [0, %d)", row, i/infer.StampWidth, i%infer.StampWidth, v, lim)
		}
	}
	return nil
}

// outputF32 returns output name of resp as float32 values after checking
// its datatype and shape.
func outputF32(resp *pb.ModelInferResponse, name string, shape []int64) ([]float32, error) {
	for i, o := range resp.GetOutputs() {
		if o.GetName() != name {
			continue
		}
		if o.GetDatatype() != "FP32" || !slices.Equal(o.GetShape(), shape) {
			return nil, infer.Errorf(infer.KindInternal, "triton: %s output %q is %s %v, want FP32 %v", resp.GetModelName(), name, o.GetDatatype(), o.GetShape(), shape)
		}
		if i >= len(resp.GetRawOutputContents()) {
			return nil, infer.Errorf(infer.KindInternal, "triton: %s output %q has no raw_output_contents (typed contents are not supported)", resp.GetModelName(), name)
		}
		raw := resp.GetRawOutputContents()[i]
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		if len(raw) != 4*n {
			return nil, infer.Errorf(infer.KindInternal, "triton: %s output %q has %d bytes, want %d", resp.GetModelName(), name, len(raw), 4*n)
		}
		return decodeF32(raw), nil
	}
	return nil, infer.Errorf(infer.KindInternal, "triton: %s returned no output %q", resp.GetModelName(), name)
}

// String describes the backend for logs.
func (b *Backend) String() string {
	d := b.cur.Load()
	return fmt.Sprintf("triton(%s %s v%s)", b.opt.URL, b.opt.Model, d.version)
}
