package modelconfig_test

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxpb"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
	"github.com/kronos-gateway/kronos-gateway/triton/internal/kronostest"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

var update = flag.Bool("update", false, "rewrite testdata/*.pbtxt golden files")

const root = "../.."

// TestConfigsMatchGraphs builds the CPU and GPU configs of every role of
// the tiny conformance model, round-trips them through the text format and
// checks them against the exported ONNX graphs.
func TestConfigsMatchGraphs(t *testing.T) {
	m, man, err := kronostest.Model(root, kronostest.Tiny, "1")
	if err != nil {
		t.Fatal(err)
	}
	graphOf := map[graphs.Role]*onnxpb.ModelProto{}
	for _, r := range graphs.Roles {
		g, err := m.Graph(r)
		if err != nil {
			t.Fatal(err)
		}
		graphOf[r] = g
	}
	for _, r := range []graphs.Role{modelconfig.Window, modelconfig.WindowS2} {
		g, err := m.WindowGraph(r)
		if err != nil {
			t.Fatal(err)
		}
		graphOf[r] = g
	}
	for _, r := range modelconfig.AllRoles {
		for _, v := range []modelconfig.Variant{modelconfig.CPU, modelconfig.GPU} {
			t.Run(string(r)+"/"+v.String(), func(t *testing.T) {
				cfg, err := modelconfig.Build(&man, r, v, modelconfig.Params{})
				if err != nil {
					t.Fatal(err)
				}
				text := modelconfig.Marshal(cfg)
				back, err := modelconfig.Parse(text)
				if err != nil {
					t.Fatalf("parse:\n%s\n%v", text, err)
				}
				if !proto.Equal(cfg, back) {
					t.Fatalf("round trip changed the config:\n%s", text)
				}
				if again := modelconfig.Marshal(back); !bytes.Equal(again, text) {
					t.Fatalf("Marshal(Parse(b)) != b:\n%s\n---\n%s", text, again)
				}
				if err := modelconfig.CheckONNX(back, graphOf[r]); err != nil {
					t.Fatalf("config vs graph:\n%v\n%s", err, text)
				}
			})
		}
	}
}

// TestCheckONNXCatchesMismatches makes sure the check can fail.
func TestCheckONNXCatchesMismatches(t *testing.T) {
	m, man, err := kronostest.Model(root, kronostest.Tiny, "1")
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.WindowGraph(modelconfig.Window)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(c *pb.ModelConfig)
		want   string
	}{
		{"renamed input", func(c *pb.ModelConfig) { c.Input[0].Name = "ids" }, `input "ids": not a graph input`},
		{"missing input", func(c *pb.ModelConfig) { c.Input = c.Input[1:] }, `graph input "s1": not configured`},
		{"wrong type", func(c *pb.ModelConfig) { c.Input[2].DataType = pb.DataType_TYPE_FP32 }, `input "stamp": data_type TYPE_FP32`},
		{"wrong vocab", func(c *pb.ModelConfig) { c.Output[0].Dims = []int64{17} }, `output "s1_logits": dim 0 is 17 in the config, 16 in the graph`},
		{"fixed vs variable", func(c *pb.ModelConfig) { c.Input[0].Dims = []int64{64} }, `dim 0 is 64 in the config but dynamic`},
		{"no reshape", func(c *pb.ModelConfig) { c.Input[3].Reshape = nil }, `input "last": configured shape [1]`},
		{"unknown output", func(c *pb.ModelConfig) { c.Output[0].Name = "logits" }, `output "logits": not a graph output`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := modelconfig.Build(&man, modelconfig.Window, modelconfig.CPU, modelconfig.Params{})
			if err != nil {
				t.Fatal(err)
			}
			if err := modelconfig.CheckONNX(cfg, g); err != nil {
				t.Fatalf("unmutated config fails: %v", err)
			}
			tc.mutate(cfg)
			err = modelconfig.CheckONNX(cfg, g)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestGolden pins the text of the window configs of kronos-nano (the
// files reviewers read); run `go test ./triton/modelconfig -update` after
// an intended change.
func TestGolden(t *testing.T) {
	_, man, err := kronostest.Model(root, kronostest.Nano, "1")
	if err != nil {
		t.Fatal(err)
	}
	// Checkpoint versions are content hashes of the carried weights; keep
	// them out of the golden files.
	man.ModelVersion, man.TokenizerVersion = "kronos-nano@sha256:test", "kronos-nano-tokenizer@sha256:test"
	for _, v := range []modelconfig.Variant{modelconfig.CPU, modelconfig.GPU} {
		for _, r := range []graphs.Role{modelconfig.Window, modelconfig.WindowS2} {
			cfg, err := modelconfig.Build(&man, r, v, modelconfig.Params{})
			if err != nil {
				t.Fatal(err)
			}
			got := modelconfig.Marshal(cfg)
			path := filepath.Join("testdata", string(r)+"."+v.String()+".pbtxt")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./triton/modelconfig -update` to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generated config; if intended, run `go test ./triton/modelconfig -update`\n--- got:\n%s", path, got)
			}
		}
	}
}

// TestRepositoryConfigs parses every config in ../../model_repository (the
// exporter's output, when present) into ModelConfig and checks each against
// its newest model.onnx.
func TestRepositoryConfigs(t *testing.T) {
	repo := filepath.Join(root, "model_repository")
	var files []string
	filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".pbtxt") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) == 0 {
		t.Skip("model_repository holds no config.pbtxt (run `make export`)")
	}
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, repo+"/"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := modelconfig.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			modelDir := filepath.Dir(f)
			if filepath.Base(modelDir) == "configs" {
				modelDir = filepath.Dir(modelDir)
			}
			if cfg.GetName() != "" && cfg.GetName() != filepath.Base(modelDir) {
				t.Errorf("name %q in folder %s", cfg.GetName(), filepath.Base(modelDir))
			}
			onnxPath := newestModel(modelDir)
			if onnxPath == "" {
				t.Skipf("no <version>/model.onnx in %s", modelDir)
			}
			raw, err := os.ReadFile(onnxPath)
			if err != nil {
				t.Fatal(err)
			}
			var mp onnxpb.ModelProto
			if err := proto.Unmarshal(raw, &mp); err != nil {
				t.Fatal(err)
			}
			if err := modelconfig.CheckONNX(cfg, &mp); err != nil {
				t.Errorf("%s vs %s:\n%v", f, onnxPath, err)
			}
		})
	}
}

// TestExportedRepositoryConfigs exports the tiny model with the exporter
// (five graphs, window graphs and Triton configs) and checks every config
// against its graph.
func TestExportedRepositoryConfigs(t *testing.T) {
	dir := t.TempDir()
	if err := kronostest.Export(dir, root, kronostest.Tiny, "1"); err != nil {
		t.Fatal(err)
	}
	n := 0
	roles := append(slices.Clone(graphs.Roles), modelconfig.Window, modelconfig.WindowS2)
	for _, r := range roles {
		md := filepath.Join(dir, graphs.ModelName("tiny", r))
		for _, f := range []string{modelconfig.ConfigFile, modelconfig.GPUConfigFile} {
			// (CPU configs of prefill, step and s2 are the exporter's own.)
			b, err := os.ReadFile(filepath.Join(md, f))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := modelconfig.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(newestModel(md))
			if err != nil {
				t.Fatal(err)
			}
			var mp onnxpb.ModelProto
			if err := proto.Unmarshal(raw, &mp); err != nil {
				t.Fatal(err)
			}
			if err := modelconfig.CheckONNX(cfg, &mp); err != nil {
				t.Errorf("%s/%s: %v", md, f, err)
			}
			n++
		}
	}
	if n != 2*len(roles) {
		t.Fatalf("checked %d configs", n)
	}
}

func TestDefaultBuckets(t *testing.T) {
	for _, tc := range []struct {
		max  int
		want []int
	}{
		{64, []int{64}}, {100, []int{64, 100}}, {256, []int{64, 128, 192, 256}}, {512, []int{64, 128, 192, 256, 320, 384, 448, 512}},
	} {
		if got := modelconfig.DefaultBuckets(tc.max); !slices.Equal(got, tc.want) {
			t.Errorf("DefaultBuckets(%d) = %v, want %v", tc.max, got, tc.want)
		}
	}
}

// newestModel returns <dir>/<highest numeric version>/model.onnx or "".
func newestModel(dir string) string {
	entries, _ := os.ReadDir(dir)
	best, bestPath := -1, ""
	for _, e := range entries {
		v, err := strconv.Atoi(e.Name())
		if err != nil || v < 0 || !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name(), "model.onnx")
		if _, err := os.Stat(p); err == nil && v > best {
			best, bestPath = v, p
		}
	}
	return bestPath
}
