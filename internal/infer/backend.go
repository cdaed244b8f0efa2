package infer

import "context"

// StampWidth is the number of time features per position: minute, hour,
// weekday (Monday = 0), day of month, month.
const StampWidth = 5

// CandleWidth is the number of candle columns the tokenizer sees: open, high,
// low, close, volume, amount.
const CandleWidth = 6

// ModelInfo describes one loaded Kronos model (tokenizer + predictor pair).
type ModelInfo struct {
	// Name is the model name clients select, e.g. "kronos-nano" or "kronos-small".
	Name string `json:"name"`
	// Version is the model-repository version serving forecasts, e.g. "1".
	Version string `json:"version"`
	// Checkpoint names the predictor checkpoint the graphs were exported from
	// (a hub id such as "NeoQuasar/Kronos-small" or a local folder name).
	Checkpoint string `json:"checkpoint"`
	// TokenizerCheckpoint names the tokenizer checkpoint.
	TokenizerCheckpoint string `json:"tokenizer_checkpoint"`
	// ModelVersion and TokenizerVersion identify the exact weights:
	// "<checkpoint>@<sha256 prefix of model.safetensors>".
	ModelVersion     string `json:"model_version"`
	TokenizerVersion string `json:"tokenizer_version"`
	// S1Bits and S2Bits are the BSQ code widths; the vocabularies have
	// 2^S1Bits and 2^S2Bits entries.
	S1Bits int `json:"s1_bits"`
	S2Bits int `json:"s2_bits"`
	// DModel is the predictor width.
	DModel int `json:"d_model"`
	// MaxContext is the longest window of tokens fed to the predictor; past
	// it the window slides (see forecast).
	MaxContext int `json:"max_context"`
	// Backend is "embedded" or "triton"; Device is e.g. "cpu" or "gpu".
	Backend string `json:"backend"`
	Device  string `json:"device"`
}

// Backend runs the exported Kronos graphs. Implementations must be safe for
// concurrent use; each forecast opens its own Session.
type Backend interface {
	// Info describes the model currently served.
	Info() ModelInfo

	// Encode runs the tokenizer encoder. x is [rows][length][CandleWidth]
	// flattened row-major (normalised candles), and the result is the
	// L2-normalised pre-quantisation vectors [rows][length][S1Bits+S2Bits].
	// Token ids are taken from the signs in Go (preprocess.BitsToIDs).
	Encode(ctx context.Context, x []float32, rows, length int) ([]float32, error)

	// Decode runs the tokenizer decoder on token ids [rows][width] and returns
	// normalised candles [rows][width][CandleWidth]. Positions count from the
	// start of each row.
	Decode(ctx context.Context, s1, s2 []int64, rows, width int) ([]float32, error)

	// NewSession opens a predictor session for one batch of rows that are
	// decoded together (the sample paths of one or several forecasts).
	NewSession(ctx context.Context, rows int) (Session, error)

	// Close releases the backend. Sessions still open fail afterwards.
	Close() error
}

// Window is the token window one row feeds to the predictor at one step.
type Window struct {
	// Start is the absolute position, in the row's full token sequence
	// (context then generated), of the first token of the window. It is 0
	// until the sequence outgrows MaxContext, then it grows by one per step.
	Start int
	// S1, S2 are the window's token ids and Stamps its time features
	// (len(Stamps) == len(S1) * StampWidth). Positions inside the graph count
	// from the window start, as in the reference.
	S1, S2 []int64
	Stamps []int64
}

// Session is the predictor state of one batch of rows across the steps of
// an autoregressive loop. It is not safe for concurrent use.
//
// At every step the loop calls S1Logits with each row's current window, then
// S2Logits with the s1 ids it sampled. A backend may cache per-row state: a
// row whose window has the same Start as at the previous call and is that
// window plus one token may be computed incrementally (KV cache); any other
// window must be computed from scratch.
type Session interface {
	// S1Logits returns the s1 logits at the last position of every window,
	// [rows][2^S1Bits]. windows[i] belongs to row i; a window with no tokens
	// marks a row that has finished and is skipped (its logits are left zero).
	S1Logits(ctx context.Context, windows []Window) ([]float32, error)

	// S2Logits returns the s2 logits [rows][2^S2Bits] given the s1 id chosen
	// for each row at the last S1Logits call. Rows skipped there are skipped
	// here too (their s1 value is ignored).
	S2Logits(ctx context.Context, s1 []int64) ([]float32, error)

	// Close releases the session's buffers.
	Close() error
}

// HiddenReporter is implemented by sessions that can report the predictor's
// final-norm hidden state [rows][DModel] at the last position of the last
// S1Logits call (used by the conformance runner).
type HiddenReporter interface {
	LastHidden() []float32
}
