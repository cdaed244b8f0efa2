package export

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Repository file names.
const (
	ModelFile    = "model.onnx"
	ManifestFile = "kronos.json"
	ConfigFile   = "config.pbtxt"
)

// Defaults of Options.
const (
	DefaultDir     = "model_repository"
	DefaultVersion = "1"
)

// Options configures WriteRepository. Zero values take the documented
// defaults.
type Options struct {
	// Dir is the model repository folder; "" means DefaultDir
	// ("model_repository").
	Dir string
	// Name is the Kronos model name, e.g. "kronos-nano" (required); the
	// Triton models are <Name>-<role>.
	Name string
	// Version is the version folder; "" means DefaultVersion ("1"). It must
	// be a positive decimal number without leading zeros (Triton ignores
	// other folders).
	Version string
	// MaxContext is written to the manifest as default_max_context
	// (required, > 0).
	MaxContext int
	// Triton configures config.pbtxt.
	Triton TritonOptions
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	switch {
	case o.Name == "" || strings.ContainsAny(o.Name, `/\ `) || o.Name == "." || o.Name == "..":
		return o, infer.Field("name", "%q is not a usable model name (no slashes or spaces)", o.Name)
	case !positiveDecimal(o.Version):
		return o, infer.Field("version", "%q: want a positive number without leading zeros", o.Version)
	case o.MaxContext <= 0:
		return o, infer.Field("max_context", "%d: want a positive number of tokens", o.MaxContext)
	}
	return o, nil
}

func positiveDecimal(s string) bool {
	if s == "" || s[0] == '0' || len(s) > 18 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Manifest returns the kronos.json of one role.
func (m *Model) Manifest(role graphs.Role, opt Options) graphs.Manifest {
	return graphs.Manifest{
		FormatVersion:       1,
		Model:               opt.Name,
		Role:                role,
		Version:             opt.Version,
		Checkpoint:          m.Predictor.Name,
		TokenizerCheckpoint: m.Tokenizer.Name,
		ModelVersion:        m.Predictor.Version(),
		TokenizerVersion:    m.Tokenizer.Version(),
		Tokenizer:           m.TokCfg,
		Predictor:           m.PredCfg,
		DefaultMaxContext:   opt.MaxContext,
		Exporter:            ProducerName + "/" + ProducerVersion,
	}
}

// WriteRepository exports the five graphs of m into a Triton model
// repository:
//
//	<Dir>/<Name>-<role>/config.pbtxt
//	<Dir>/<Name>-<role>/<Version>/model.onnx
//	<Dir>/<Name>-<role>/<Version>/kronos.json
//
// Every file is written to a temporary name and renamed into place, so a
// reader never sees a partial file. Bad options are infer.KindInvalid
// (FieldError), bad checkpoints infer.KindInvalid, I/O failures
// infer.KindInternal. ctx is checked between graphs.
func WriteRepository(ctx context.Context, m *Model, opt Options) error {
	opt, err := opt.withDefaults()
	if err != nil {
		return err
	}
	for _, role := range graphs.Roles {
		if err := ctx.Err(); err != nil {
			return infer.FromContext(err)
		}
		mp, err := m.Graph(role)
		if err != nil {
			return err
		}
		onnx, err := Marshal(mp)
		if err != nil {
			return infer.Wrap(infer.KindInternal, err, "export %s: marshal", role)
		}
		name := graphs.ModelName(opt.Name, role)
		cfg, err := TritonConfig(name, mp, opt.Triton)
		if err != nil {
			return infer.Wrap(infer.KindInternal, err, "export %s", role)
		}
		man, err := json.MarshalIndent(m.Manifest(role, opt), "", "  ")
		if err != nil {
			return infer.Wrap(infer.KindInternal, err, "export %s: manifest", role)
		}
		dir := filepath.Join(opt.Dir, name)
		vdir := filepath.Join(dir, opt.Version)
		for _, f := range []struct {
			path string
			data []byte
		}{
			{filepath.Join(vdir, ModelFile), onnx},
			{filepath.Join(vdir, ManifestFile), append(man, '\n')},
			{filepath.Join(dir, ConfigFile), []byte(cfg)},
		} {
			if err := writeFile(f.path, f.data); err != nil {
				return infer.Wrap(infer.KindInternal, err, "export %s", role)
			}
		}
	}
	return nil
}

// writeFile writes data to path through a temporary file in the same
// folder and a rename.
func writeFile(path string, data []byte) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// LocalName is the display name of a local checkpoint folder: its last two
// path elements ("kronos-nano/predictor" for models/kronos-nano/predictor),
// which identify the pair without depending on where the repository is
// checked out or on how the path was typed.
func LocalName(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir)
	}
	base := filepath.Base(abs)
	parent := filepath.Base(filepath.Dir(abs))
	if parent == "/" || parent == "." || parent == "" {
		return base
	}
	return parent + "/" + base
}

// Resolve loads a checkpoint given as a local folder or as a hub repository
// id ("owner/name", fetched with checkpoint.Fetch and fetch's settings; Repo
// is set from ref). An existing folder always wins over a repository id.
func Resolve(ctx context.Context, ref string, fetch checkpoint.FetchOptions) (*checkpoint.Checkpoint, error) {
	if ref == "" {
		return nil, infer.Errorf(infer.KindInvalid, "empty checkpoint reference")
	}
	if st, err := os.Stat(ref); err == nil && st.IsDir() {
		return checkpoint.Load(ref, LocalName(ref))
	}
	if err := checkpoint.ValidateRepo(ref); err != nil {
		return nil, infer.Errorf(infer.KindNotFound, "checkpoint %q: no such folder, and not a hub repository id (%v)", ref, err)
	}
	fetch.Repo = ref
	dir, err := checkpoint.Fetch(ctx, fetch)
	if err != nil {
		return nil, err
	}
	return checkpoint.Load(dir, ref)
}
