package forecast

import (
	"time"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Params are the sampling parameters of one series. Zero values are NOT
// defaults: use DefaultParams and override.
type Params struct {
	Temperature float64 // > 0
	TopK        int     // >= 0; 0 disables top-k
	TopP        float64 // 0 < p <= 1; 1 disables top-p
	SampleCount int     // >= 1 paths, decoded as one batch
	Seed        uint64  // same seed, input, model and backend -> identical output
}

// DefaultParams are upstream KronosPredictor.predict's defaults
// (T 1.0, top_k 0, top_p 0.9, sample_count 1), seed 0.
func DefaultParams() Params { return Params{Temperature: 1, TopK: 0, TopP: 0.9, SampleCount: 1} }

// Job is one series to forecast.
type Job struct {
	// X is x_filled [L][6] float32 (preprocess.Fill), L >= 1.
	X []float32
	// XTime are the L context timestamps, YTime the P prediction timestamps
	// (P >= 1); time features are taken in each timestamp's own offset.
	XTime, YTime []time.Time
	Params       Params
	// Quantiles to report per step and column over the sample paths, each in
	// [0,1] (may be empty).
	Quantiles []float64
	// ReturnPaths asks for every sample path.
	ReturnPaths bool
}

// Result is the forecast of one Job.
type Result struct {
	// Mean is the prediction [P][6]: the mean over the sample paths in
	// normalised space, de-normalised (exactly the reference's output).
	Mean []float32
	// Quantiles[q] is [P][6] for Job.Quantiles[q], computed over the
	// de-normalised paths (linear interpolation, NumPy's default).
	Quantiles [][]float32
	// Paths is [S][P][6] de-normalised, when Job.ReturnPaths.
	Paths []float32
	// ContextUsed is L; MeanStd are the statistics used.
	ContextUsed int
	Mean6, Std6 [6]float32
	// Seed is the seed used.
	Seed uint64
}

// Forecaster runs jobs on a backend.
type Forecaster struct {
	Backend infer.Backend
	// MaxContext overrides Backend.Info().MaxContext when > 0.
	MaxContext int
	// Clip is the normalisation clip (preprocess.DefaultClip when 0).
	Clip float32
	// Trace, when non-nil, is filled by Predict (not safe for concurrent
	// Predict calls; use a fresh Forecaster per traced call).
	Trace *Trace
}

// Trace collects intermediate values of one Predict call when set on the
// Forecaster (conformance runner, debugging). Rows are series-major: the
// SampleCount rows of job 0, then those of job 1, ...
type Trace struct {
	XNorm      [][]float32 // per job [L][6]
	QuantInput [][]float32 // per job [L][D]
	ContextS1  [][]int64   // per job [L]
	ContextS2  [][]int64
	// Hidden0 is the predictor hidden state [rows][d] at the last position of
	// step 0 (when the session implements infer.HiddenReporter).
	Hidden0   []float32
	Steps     []TraceStep
	FinalS1   [][]int64 // per row: the ids decoded at the end
	FinalS2   [][]int64
	Decoded   [][]float32 // per row [W][6]
	PredsNorm [][]float32 // per job [P][6]
}

// TraceStep is one autoregressive step over all rows.
type TraceStep struct {
	WindowStart []int // per row (-1 for a finished row)
	WindowEnd   []int
	S1Logits    []float32 // [rows][V1]
	S2Logits    []float32 // [rows][V2]
	S1, S2      []int64   // [rows]
}
