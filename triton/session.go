package triton

import (
	"context"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

// Session is one forecast's predictor session on Triton. It is stateless
// on the server: every S1Logits call sends each active row's full window
// to <Model>-window, and S2Logits sends the same windows again with the
// chosen s1 ids to <Model>-window_s2 (no KV cache travels over gRPC).
// Windows are right-padded to the session's bucket with id 0 and stamp 0,
// and `last` tells the graph where each row ends; attention is causal, so
// padding does not change the logits. Finished rows (empty windows) are
// left out of the request.
//
// Every call of a session goes to the model version pinned when it was
// opened. A Session implements infer.Session and is not safe for
// concurrent use.
type Session struct {
	b      *Backend
	d      *description
	rows   int
	closed bool

	// The last S1Logits call: its active rows, padded length and raw
	// inputs (s1, s2, stamp, last), kept for S2Logits.
	active []int
	t      int
	raw    [4][]byte
	ready  bool

	stats counters
}

var _ infer.Session = (*Session)(nil)

// NewSession opens a session for rows rows pinned to the model version
// Triton serves now (resolved at most Options.VersionRefresh ago).
func (b *Backend) NewSession(ctx context.Context, rows int) (infer.Session, error) {
	return b.OpenSession(ctx, rows)
}

// OpenSession is NewSession with the concrete type.
func (b *Backend) OpenSession(ctx context.Context, rows int) (*Session, error) {
	if rows <= 0 {
		return nil, infer.Errorf(infer.KindInvalid, "triton: session with %d rows", rows)
	}
	d, err := b.resolve(ctx)
	if err != nil {
		return nil, err
	}
	return &Session{b: b, d: d, rows: rows}, nil
}

// Version returns the pinned model version.
func (s *Session) Version() string { return s.d.version }

// Stats returns the session's ModelInfer traffic so far.
func (s *Session) Stats() Stats { return s.stats.snapshot() }

// Close ends the session (it holds no server state). Idempotent.
func (s *Session) Close() error {
	s.closed = true
	s.raw = [4][]byte{}
	return nil
}

// S1Logits returns the s1 logits [rows][V1] at the last position of each
// window (zero for rows whose window is empty).
func (s *Session) S1Logits(ctx context.Context, windows []infer.Window) ([]float32, error) {
	if s.closed {
		return nil, infer.Errorf(infer.KindUnavailable, "triton: session is closed")
	}
	if len(windows) != s.rows {
		return nil, infer.Errorf(infer.KindInvalid, "triton: %d windows for a session of %d rows", len(windows), s.rows)
	}
	s.ready = false
	s.active = s.active[:0]
	longest := 0
	for r, w := range windows {
		n := len(w.S1)
		if len(w.S2) != n || len(w.Stamps) != n*infer.StampWidth {
			return nil, infer.Errorf(infer.KindInvalid, "triton: window %d: %d s1, %d s2 ids and %d stamp values", r, n, len(w.S2), len(w.Stamps))
		}
		if n > s.d.info.MaxContext {
			return nil, infer.Errorf(infer.KindInvalid, "triton: window %d has %d tokens, max context is %d", r, n, s.d.info.MaxContext)
		}
		if n == 0 {
			continue
		}
		if err := checkIDs("s1", w.S1, s.d.v1); err != nil {
			return nil, err
		}
		if err := checkIDs("s2", w.S2, s.d.v2); err != nil {
			return nil, err
		}
		if err := checkStamps(r, w.Stamps); err != nil {
			return nil, err
		}
		s.active = append(s.active, r)
		longest = max(longest, n)
	}
	out := make([]float32, s.rows*s.d.v1)
	if len(s.active) == 0 {
		s.ready = true
		return out, nil
	}
	t := padLen(s.d.buckets, longest)
	s.t = t
	n := len(s.active)
	for i := range s.raw {
		s.raw[i] = s.raw[i][:0]
	}
	var padIDs [8]byte
	for _, r := range s.active {
		w := windows[r]
		k := len(w.S1)
		s.raw[0] = appendI64(s.raw[0], w.S1)
		s.raw[1] = appendI64(s.raw[1], w.S2)
		s.raw[2] = appendI64(s.raw[2], w.Stamps)
		for range t - k {
			s.raw[0] = append(s.raw[0], padIDs[:]...)
			s.raw[1] = append(s.raw[1], padIDs[:]...)
			for range infer.StampWidth {
				s.raw[2] = append(s.raw[2], padIDs[:]...)
			}
		}
		s.raw[3] = appendI64(s.raw[3], []int64{int64(k - 1)})
	}
	err := runChunks(ctx, n, s.d.maxBatch[modelconfig.Window], func(ctx context.Context, lo, hi int) error {
		req := s.windowRequest(lo, hi, nil)
		req.Outputs = []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: graphs.OutS1Logits}}
		resp, err := s.b.infer(ctx, modelconfig.Window, s.d.version, req, &s.stats)
		if err != nil {
			return err
		}
		l, err := outputF32(resp, graphs.OutS1Logits, []int64{int64(hi - lo), int64(s.d.v1)})
		if err != nil {
			return err
		}
		for i := lo; i < hi; i++ {
			r := s.active[i]
			copy(out[r*s.d.v1:(r+1)*s.d.v1], l[(i-lo)*s.d.v1:])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.ready = true
	return out, nil
}

// S2Logits returns the s2 logits [rows][V2] given the s1 id chosen for
// each row at the last S1Logits call (rows skipped there stay zero).
func (s *Session) S2Logits(ctx context.Context, s1 []int64) ([]float32, error) {
	if s.closed {
		return nil, infer.Errorf(infer.KindUnavailable, "triton: session is closed")
	}
	if !s.ready {
		return nil, infer.Errorf(infer.KindInvalid, "triton: S2Logits without a successful S1Logits")
	}
	if len(s1) != s.rows {
		return nil, infer.Errorf(infer.KindInvalid, "triton: %d s1 ids for a session of %d rows", len(s1), s.rows)
	}
	out := make([]float32, s.rows*s.d.v2)
	if len(s.active) == 0 {
		return out, nil
	}
	next := make([]int64, len(s.active))
	for i, r := range s.active {
		next[i] = s1[r]
	}
	if err := checkIDs("s1", next, s.d.v1); err != nil {
		return nil, err
	}
	nextRaw := appendI64(nil, next)
	err := runChunks(ctx, len(s.active), s.d.maxBatch[modelconfig.WindowS2], func(ctx context.Context, lo, hi int) error {
		req := s.windowRequest(lo, hi, nextRaw[8*lo:8*hi])
		req.Outputs = []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: graphs.OutS2Logits}}
		resp, err := s.b.infer(ctx, modelconfig.WindowS2, s.d.version, req, &s.stats)
		if err != nil {
			return err
		}
		l, err := outputF32(resp, graphs.OutS2Logits, []int64{int64(hi - lo), int64(s.d.v2)})
		if err != nil {
			return err
		}
		for i := lo; i < hi; i++ {
			r := s.active[i]
			copy(out[r*s.d.v2:(r+1)*s.d.v2], l[(i-lo)*s.d.v2:])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// windowRequest builds the inputs of active rows [lo, hi) over the kept
// raw buffers (no copy); next, when not nil, adds next_s1.
func (s *Session) windowRequest(lo, hi int, next []byte) *pb.ModelInferRequest {
	n, t := int64(hi-lo), int64(s.t)
	ids := int(t) * 8
	req := &pb.ModelInferRequest{
		Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: graphs.InS1, Datatype: "INT64", Shape: []int64{n, t}},
			{Name: graphs.InS2, Datatype: "INT64", Shape: []int64{n, t}},
			{Name: graphs.InStamp, Datatype: "INT64", Shape: []int64{n, t, infer.StampWidth}},
			{Name: graphs.InLast, Datatype: "INT64", Shape: []int64{n, 1}},
		},
		RawInputContents: [][]byte{
			s.raw[0][lo*ids : hi*ids],
			s.raw[1][lo*ids : hi*ids],
			s.raw[2][lo*ids*infer.StampWidth : hi*ids*infer.StampWidth],
			s.raw[3][lo*8 : hi*8],
		},
	}
	if next != nil {
		req.Inputs = append(req.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: modelconfig.InNextS1, Datatype: "INT64", Shape: []int64{n, 1}})
		req.RawInputContents = append(req.RawInputContents, next)
	}
	return req
}
