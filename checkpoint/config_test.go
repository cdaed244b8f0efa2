package checkpoint

import (
	"os"
	"strings"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTokenizerConfig(t *testing.T) {
	const base = `"d_model":32,"n_heads":2,"ff_dim":64,"n_enc_layers":3,"n_dec_layers":3`
	tests := []struct {
		name   string
		config string
		want   graphs.TokenizerConfig
		errHas string // "" means valid
	}{
		{"reference", `{"d_in":6,` + base + `,"s1_bits":4,"s2_bits":4,"beta":0.05}`, graphs.TokenizerConfig{DIn: 6, DModel: 32, NHeads: 2, FFDim: 64, NEncLayers: 3, NDecLayers: 3, S1Bits: 4, S2Bits: 4}, ""},
		{"d_in defaults to 6", `{` + base + `,"s1_bits":10,"s2_bits":10}`, graphs.TokenizerConfig{DIn: 6, DModel: 32, NHeads: 2, FFDim: 64, NEncLayers: 3, NDecLayers: 3, S1Bits: 10, S2Bits: 10}, ""},
		{"d_in 5", `{"d_in":5,` + base + `,"s1_bits":4,"s2_bits":4}`, graphs.TokenizerConfig{}, "d_in 5"},
		{"odd head size", `{"d_model":20,"n_heads":4,"ff_dim":64,"n_enc_layers":3,"n_dec_layers":3,"s1_bits":4,"s2_bits":4}`, graphs.TokenizerConfig{}, "even head size"},
		{"heads do not divide", `{"d_model":32,"n_heads":3,"ff_dim":64,"n_enc_layers":3,"n_dec_layers":3,"s1_bits":4,"s2_bits":4}`, graphs.TokenizerConfig{}, "even head size"},
		{"no heads", `{"d_model":32,"ff_dim":64,"n_enc_layers":3,"n_dec_layers":3,"s1_bits":4,"s2_bits":4}`, graphs.TokenizerConfig{}, "n_heads 0"},
		{"no ff", `{"d_model":32,"n_heads":2,"n_enc_layers":3,"n_dec_layers":3,"s1_bits":4,"s2_bits":4}`, graphs.TokenizerConfig{}, "ff_dim 0"},
		{"no encoder", `{"d_model":32,"n_heads":2,"ff_dim":64,"n_dec_layers":3,"s1_bits":4,"s2_bits":4}`, graphs.TokenizerConfig{}, "n_enc_layers 0"},
		{"bits differ", `{` + base + `,"s1_bits":4,"s2_bits":5}`, graphs.TokenizerConfig{}, "must be equal"},
		{"too many bits", `{` + base + `,"s1_bits":21,"s2_bits":21}`, graphs.TokenizerConfig{}, "1..20"},
		{"no bits", `{` + base + `}`, graphs.TokenizerConfig{}, "s1_bits 0"},
		{"wrong type", `{"d_model":"32"}`, graphs.TokenizerConfig{}, "config.json"},
		{"not an object", `[1]`, graphs.TokenizerConfig{}, "config.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checkpoint{Name: "tok", Config: []byte(tc.config)}
			got, err := c.TokenizerConfig()
			if tc.errHas == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			wantKind(t, err, infer.KindInvalid)
			if !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), "checkpoint tok") {
				t.Errorf("error %q does not name the checkpoint and %q", err, tc.errHas)
			}
		})
	}
}

func TestPredictorConfig(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   graphs.PredictorConfig
		errHas string
	}{
		{"reference", `{"attn_dropout_p":0.0,"d_model":32,"ff_dim":64,"learn_te":true,"n_heads":2,"n_layers":2,"s1_bits":4,"s2_bits":4}`, graphs.PredictorConfig{DModel: 32, NHeads: 2, FFDim: 64, NLayers: 2, S1Bits: 4, S2Bits: 4, LearnTE: true}, ""},
		{"unequal bits are fine", `{"d_model":32,"ff_dim":64,"n_heads":2,"n_layers":2,"s1_bits":4,"s2_bits":6}`, graphs.PredictorConfig{DModel: 32, NHeads: 2, FFDim: 64, NLayers: 2, S1Bits: 4, S2Bits: 6}, ""},
		{"odd head size", `{"d_model":36,"ff_dim":64,"n_heads":4,"n_layers":2,"s1_bits":4,"s2_bits":4}`, graphs.PredictorConfig{}, "even head size"},
		{"not divisible by the dependency heads", `{"d_model":34,"ff_dim":64,"n_heads":1,"n_layers":2,"s1_bits":4,"s2_bits":4}`, graphs.PredictorConfig{}, "4 heads of even size"},
		{"odd dependency head size", `{"d_model":36,"ff_dim":64,"n_heads":2,"n_layers":2,"s1_bits":4,"s2_bits":4}`, graphs.PredictorConfig{}, "4 heads of even size"},
		{"no layers", `{"d_model":32,"ff_dim":64,"n_heads":2,"s1_bits":4,"s2_bits":4}`, graphs.PredictorConfig{}, "n_layers 0"},
		{"no ff", `{"d_model":32,"n_heads":2,"n_layers":2,"s1_bits":4,"s2_bits":4}`, graphs.PredictorConfig{}, "ff_dim 0"},
		{"too many bits", `{"d_model":32,"ff_dim":64,"n_heads":2,"n_layers":2,"s1_bits":4,"s2_bits":21}`, graphs.PredictorConfig{}, "s2_bits 21"},
		{"no s1 bits", `{"d_model":32,"ff_dim":64,"n_heads":2,"n_layers":2,"s2_bits":4}`, graphs.PredictorConfig{}, "s1_bits 0"},
		{"not JSON", `{"d_model":`, graphs.PredictorConfig{}, "config.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checkpoint{Name: "pred", Config: []byte(tc.config)}
			got, err := c.PredictorConfig()
			if tc.errHas == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			wantKind(t, err, infer.KindInvalid)
			if !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), "checkpoint pred") {
				t.Errorf("error %q does not name the checkpoint and %q", err, tc.errHas)
			}
		})
	}
}
