package export

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// defaultModel is the export of the committed model repository (make export).
var defaultModel = struct {
	tokenizer, predictor, name string
	maxContext                 int
}{"../models/kronos-nano/tokenizer", "../models/kronos-nano/predictor", "kronos-nano", 256}

const reexport = "go run ./cmd/kronos-export --tokenizer models/kronos-nano/tokenizer --predictor models/kronos-nano/predictor --name kronos-nano --max-context 256 --out model_repository"

// TestCommittedRepository re-exports the default model and requires every
// file to equal the committed model_repository/ byte for byte.
func TestCommittedRepository(t *testing.T) {
	ctx := context.Background()
	tok, err := Resolve(ctx, defaultModel.tokenizer, checkpoint.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pred, err := Resolve(ctx, defaultModel.predictor, checkpoint.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(tok, pred)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opt := Options{Dir: dir, Name: defaultModel.name, MaxContext: defaultModel.maxContext}
	if err := WriteRepository(ctx, m, opt); err != nil {
		t.Fatal(err)
	}
	if err := WriteTritonModels(ctx, m, opt, modelconfig.Params{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		n++
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join("..", DefaultDir, rel))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			t.Errorf("model_repository/%s is missing; re-run the export (make export: %s) and commit it", rel, reexport)
		case err != nil:
			return err
		case !bytes.Equal(got, want):
			t.Errorf("model_repository/%s differs from a fresh export (%d vs %d bytes); re-run the export (make export: %s) and commit it", rel, len(got), len(want), reexport)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Per model: config.pbtxt, configs/gpu.pbtxt, <version>/model.onnx and
	// <version>/kronos.json, for the embedded roles and the Triton windows.
	if want := 4 * (len(graphs.Roles) + len(TritonRoles)); n != want {
		t.Errorf("export wrote %d files, want %d", n, want)
	}
	// Nothing stale in the committed repository either.
	committed := 0
	err = filepath.WalkDir(filepath.Join("..", DefaultDir), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(path, defaultModel.name+"-") {
			committed++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if committed != n {
		t.Errorf("model_repository/ has %d files of %s, a fresh export %d: remove stale files and re-run %s", committed, defaultModel.name, n, reexport)
	}
}

func TestWriteRepository(t *testing.T) {
	m := loadModel(t, tiny)
	dir := t.TempDir()
	opt := Options{Dir: dir, Name: "tiny", Version: "3", MaxContext: 64}
	if err := WriteRepository(context.Background(), m, opt); err != nil {
		t.Fatal(err)
	}
	for _, r := range graphs.Roles {
		base := filepath.Join(dir, "tiny-"+string(r))
		man, err := graphs.ReadManifest(filepath.Join(base, "3", ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		want := graphs.Manifest{
			FormatVersion: 1, Model: "tiny", Role: r, Version: "3",
			Checkpoint: m.Predictor.Name, TokenizerCheckpoint: m.Tokenizer.Name,
			ModelVersion: m.Predictor.Version(), TokenizerVersion: m.Tokenizer.Version(),
			Tokenizer: m.TokCfg, Predictor: m.PredCfg, DefaultMaxContext: 64,
			Exporter: ProducerName + "/" + ProducerVersion,
		}
		if *man != want {
			t.Errorf("%s manifest:\n got %+v\nwant %+v", r, *man, want)
		}
		onnx, err := os.ReadFile(filepath.Join(base, "3", ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := m.ONNX(r); !bytes.Equal(onnx, b) {
			t.Errorf("%s: model.onnx differs from Model.ONNX", r)
		}
		if _, err := os.Stat(filepath.Join(base, ConfigFile)); err != nil {
			t.Error(err)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", "*", ".*tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name  string
		opt   Options
		field string // "" = valid
	}{
		{"defaults", Options{Name: "m", MaxContext: 8}, ""},
		{"no name", Options{MaxContext: 8}, "name"},
		{"slash in name", Options{Name: "a/b", MaxContext: 8}, "name"},
		{"dotdot", Options{Name: "..", MaxContext: 8}, "name"},
		{"no max context", Options{Name: "m"}, "max_context"},
		{"version zero", Options{Name: "m", MaxContext: 8, Version: "0"}, "version"},
		{"version leading zero", Options{Name: "m", MaxContext: 8, Version: "01"}, "version"},
		{"version text", Options{Name: "m", MaxContext: 8, Version: "v1"}, "version"},
		{"version 12", Options{Name: "m", MaxContext: 8, Version: "12"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opt.withDefaults()
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.Dir == "" || got.Version == "" {
					t.Errorf("defaults not applied: %+v", got)
				}
				return
			}
			var fe *infer.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, infer.ErrInvalid) {
				t.Fatalf("err = %v, want a FieldError on %q", err, tt.field)
			}
		})
	}
}

func TestNewModelMismatch(t *testing.T) {
	tiny := loadModel(t, tiny)
	nano := loadModel(t, nano)
	if _, err := NewModel(tiny.Tokenizer, nano.Predictor); !errors.Is(err, infer.ErrInvalid) {
		t.Fatalf("tiny tokenizer + nano predictor: err = %v, want invalid", err)
	}
	if _, err := NewModel(nil, nano.Predictor); !errors.Is(err, infer.ErrInvalid) {
		t.Fatalf("nil tokenizer: err = %v, want invalid", err)
	}
	broken := *nano.Predictor
	broken.Tensors = map[string]*checkpoint.Tensor{}
	for k, v := range nano.Predictor.Tensors {
		if k != "norm.weight" {
			broken.Tensors[k] = v
		}
	}
	m, err := NewModel(nano.Tokenizer, &broken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ONNX(graphs.Prefill); !errors.Is(err, infer.ErrInvalid) {
		t.Fatalf("missing norm.weight: err = %v, want invalid", err)
	}
}

// TestTritonConfigGolden pins config.pbtxt of every role of the tiny model.
func TestTritonConfigGolden(t *testing.T) {
	m := loadModel(t, tiny)
	for _, r := range graphs.Roles {
		t.Run(string(r), func(t *testing.T) {
			mp, err := m.Graph(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := TritonConfig("tiny-"+string(r), mp, TritonOptions{})
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "tiny-"+string(r)+".config.pbtxt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run `go test ./export -run TestTritonConfigGolden -update` to create it)", err)
			}
			if got != string(want) {
				t.Errorf("config.pbtxt differs from %s; if the change is intended, run `go test ./export -run TestTritonConfigGolden -update`\n got:\n%s", golden, got)
			}
		})
	}
}
