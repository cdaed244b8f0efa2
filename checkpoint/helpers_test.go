package checkpoint

import (
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// update rewrites the golden files under testdata/ instead of comparing.
var update = flag.Bool("update", false, "rewrite the golden files in checkpoint/testdata")

// Reference checkpoints written by the original PyTorch code.
const (
	confModels = "../testdata/conformance/models"
	nanoModel  = "../testdata/conformance-nano/models/kronos-nano"
)

// referenceDirs lists every reference checkpoint folder by a short name.
var referenceDirs = []struct{ name, dir string }{
	{"tiny/tokenizer", filepath.Join(confModels, "tiny", "tokenizer")},
	{"tiny/predictor", filepath.Join(confModels, "tiny", "predictor")},
	{"tiny-fixedte/tokenizer", filepath.Join(confModels, "tiny-fixedte", "tokenizer")},
	{"tiny-fixedte/predictor", filepath.Join(confModels, "tiny-fixedte", "predictor")},
	{"nano/tokenizer", filepath.Join(nanoModel, "tokenizer")},
	{"nano/predictor", filepath.Join(nanoModel, "predictor")},
}

func mustLoad(t testing.TB, dir string) *Checkpoint {
	t.Helper()
	c, err := Load(dir, "")
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	return c
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantKind fails unless err is non-nil and of kind k.
func wantKind(t testing.TB, err error, k infer.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a %s error", k)
	}
	if got := infer.KindOf(err); got != k {
		t.Fatalf("error %q has kind %s, want %s", err, got, k)
	}
}

// sameTensor reports whether two tensors have the same name, dtype, shape and
// bit-identical data.
func sameTensor(a, b *Tensor) error {
	switch {
	case a.Name != b.Name:
		return errors.New("names differ: " + a.Name + " vs " + b.Name)
	case a.DType != b.DType:
		return errors.New(a.Name + ": dtypes differ: " + a.DType + " vs " + b.DType)
	case !sameShape(a.Shape, b.Shape):
		return errors.New(a.Name + ": shapes differ")
	case len(a.F32) != len(b.F32) || len(a.I64) != len(b.I64):
		return errors.New(a.Name + ": lengths differ")
	}
	for i := range a.F32 {
		if math.Float32bits(a.F32[i]) != math.Float32bits(b.F32[i]) {
			return errors.New(a.Name + ": values differ")
		}
	}
	for i := range a.I64 {
		if a.I64[i] != b.I64[i] {
			return errors.New(a.Name + ": values differ")
		}
	}
	return nil
}
