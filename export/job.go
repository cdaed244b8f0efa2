package export

import (
	"context"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

// Job is one run of cmd/kronos-export: where the checkpoints come from and
// where the repository goes.
type Job struct {
	// Tokenizer and Predictor are local folders or hub repository ids such
	// as "NeoQuasar/Kronos-small" (see Resolve). Both are required unless
	// Random is set, and must be empty when it is.
	Tokenizer, Predictor string
	// Fetch configures hub downloads (Repo is set per checkpoint).
	Fetch checkpoint.FetchOptions
	// Random, when set, names a checkpoint.RandomPair preset ("small",
	// "nano", ...) whose random weights are exported instead; Seed seeds
	// them. Options.MaxContext 0 then means the preset's context.
	Random string
	Seed   uint64
	// Options says where and how to write the repository.
	Options Options
	// NoTriton skips the Triton backend's models (window graphs and the
	// CPU/GPU Triton configs, see WriteTritonModels): the repository then
	// serves the embedded backend only.
	NoTriton bool
}

// Run loads the checkpoints and writes the repository. It returns the
// exported model (for reporting) and the options actually used.
func (j Job) Run(ctx context.Context) (*Model, Options, error) {
	tok, pred, err := j.load(ctx)
	if err != nil {
		return nil, j.Options, err
	}
	m, err := NewModel(tok, pred)
	if err != nil {
		return nil, j.Options, err
	}
	opt, err := j.Options.withDefaults()
	if err != nil {
		return nil, opt, err
	}
	if err := WriteRepository(ctx, m, opt); err != nil {
		return m, opt, err
	}
	if j.NoTriton {
		return m, opt, nil
	}
	return m, opt, WriteTritonModels(ctx, m, opt, modelconfig.Params{})
}

func (j *Job) load(ctx context.Context) (tok, pred *checkpoint.Checkpoint, err error) {
	if j.Random != "" {
		if j.Tokenizer != "" || j.Predictor != "" {
			return nil, nil, infer.Field("random", "give either a random preset or --tokenizer/--predictor, not both")
		}
		tok, pred, maxContext, err := checkpoint.RandomPair(j.Random, j.Seed)
		if err != nil {
			return nil, nil, err
		}
		if j.Options.MaxContext == 0 {
			j.Options.MaxContext = maxContext
		}
		return tok, pred, nil
	}
	if j.Tokenizer == "" || j.Predictor == "" {
		return nil, nil, infer.Field("tokenizer", "both --tokenizer and --predictor are required (or --random PRESET)")
	}
	if tok, err = Resolve(ctx, j.Tokenizer, j.Fetch); err != nil {
		return nil, nil, err
	}
	if pred, err = Resolve(ctx, j.Predictor, j.Fetch); err != nil {
		return nil, nil, err
	}
	return tok, pred, nil
}
