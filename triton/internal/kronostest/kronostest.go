// Package kronostest exports the conformance checkpoints carried in
// testdata into temporary Triton-layout model repositories for the tests of
// triton/ and its subpackages. It is imported by tests only.
package kronostest

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/export"
	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

// Config is one carried conformance configuration.
type Config struct {
	Name       string // config name, also the model name in the repository
	Dir        string // conformance root (relative to the module root) holding models/ and cases/
	MaxContext int
}

// Carried configurations.
var (
	Tiny        = Config{"tiny", "testdata/conformance", 64}
	TinyFixedTE = Config{"tiny-fixedte", "testdata/conformance", 64}
	Nano        = Config{"kronos-nano", "testdata/conformance-nano", 256}
)

// CasesDir returns the cases folder of c under the module root.
func (c Config) CasesDir(root string) string { return filepath.Join(root, c.Dir, "cases", c.Name) }

// Model loads c's checkpoints and returns the exporter's model and the
// manifest of version ver (role left empty).
func Model(root string, c Config, ver string) (*export.Model, graphs.Manifest, error) {
	base := filepath.Join(root, c.Dir, "models", c.Name)
	tok, err := checkpoint.Load(filepath.Join(base, "tokenizer"), "")
	if err != nil {
		return nil, graphs.Manifest{}, err
	}
	pred, err := checkpoint.Load(filepath.Join(base, "predictor"), "")
	if err != nil {
		return nil, graphs.Manifest{}, err
	}
	m, err := export.NewModel(tok, pred)
	if err != nil {
		return nil, graphs.Manifest{}, err
	}
	man := graphs.Manifest{
		FormatVersion: 1, Model: c.Name, Version: ver,
		Checkpoint: pred.Name, TokenizerCheckpoint: tok.Name,
		ModelVersion: pred.Version(), TokenizerVersion: tok.Version(),
		Tokenizer: m.TokCfg, Predictor: m.PredCfg,
		DefaultMaxContext: c.MaxContext, Exporter: "kronostest",
	}
	return m, man, nil
}

// Export writes version ver of c into repo with the exporter: the five
// graphs of internal/graphs (export.WriteRepository) and the Triton
// backend's models and configs (export.WriteTritonModels).
func Export(repo, root string, c Config, ver string) error {
	m, _, err := Model(root, c, ver)
	if err != nil {
		return err
	}
	opt := export.Options{Dir: repo, Name: c.Name, Version: ver, MaxContext: c.MaxContext}
	if err := export.WriteRepository(context.Background(), m, opt); err != nil {
		return err
	}
	return export.WriteTritonModels(context.Background(), m, opt, modelconfig.Params{})
}

var cache struct {
	sync.Mutex
	dirs map[string]string
	errs map[string]error
}

// Repo returns a repository holding version "1" of c, exported once per
// test binary into a temporary folder (remove it with Cleanup).
func Repo(root string, c Config) (string, error) {
	cache.Lock()
	defer cache.Unlock()
	if cache.dirs == nil {
		cache.dirs, cache.errs = map[string]string{}, map[string]error{}
	}
	if d, ok := cache.dirs[c.Name]; ok {
		return d, cache.errs[c.Name]
	}
	d, err := os.MkdirTemp("", "kronostest-"+c.Name+"-")
	if err == nil {
		err = Export(d, root, c, "1")
	}
	cache.dirs[c.Name], cache.errs[c.Name] = d, err
	return d, err
}

// Cleanup removes every repository Repo made.
func Cleanup() {
	cache.Lock()
	defer cache.Unlock()
	for _, d := range cache.dirs {
		os.RemoveAll(d)
	}
	cache.dirs, cache.errs = nil, nil
}
