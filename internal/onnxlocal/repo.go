package onnxlocal

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// File names inside a version folder.
const (
	modelFile    = "model.onnx"
	manifestFile = "kronos.json"
)

// version is one resolved model version: the folder of every role and the
// manifests read from them.
type version struct {
	name      string
	dirs      map[graphs.Role]string
	manifests map[graphs.Role]*graphs.Manifest
}

// resolveVersion finds the version folders of model in repo (the highest
// numeric one present for all roles when want is empty) and reads their
// manifests.
func resolveVersion(repo, model, want string) (*version, error) {
	if st, err := os.Stat(repo); err != nil || !st.IsDir() {
		return nil, infer.Errorf(infer.KindNotFound, "onnxlocal: model repository %s not found", repo)
	}
	roleDirs := make(map[graphs.Role]string, len(graphs.Roles))
	for _, r := range graphs.Roles {
		d := filepath.Join(repo, graphs.ModelName(model, r))
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return nil, infer.Errorf(infer.KindNotFound, "onnxlocal: model %q not found in %s (no %s)", model, repo, filepath.Base(d))
		}
		roleDirs[r] = d
	}
	if want == "" {
		v, err := highestCommonVersion(roleDirs)
		if err != nil {
			return nil, err
		}
		if v == "" {
			return nil, infer.Errorf(infer.KindNotFound, "onnxlocal: model %q in %s has no version present for all five graphs", model, repo)
		}
		want = v
	}
	out := &version{name: want, dirs: map[graphs.Role]string{}, manifests: map[graphs.Role]*graphs.Manifest{}}
	for _, r := range graphs.Roles {
		d := filepath.Join(roleDirs[r], want)
		if !complete(d) {
			return nil, infer.Errorf(infer.KindNotFound, "onnxlocal: model %q version %q: %s has no %s and %s", model, want, d, modelFile, manifestFile)
		}
		m, err := graphs.ReadManifest(filepath.Join(d, manifestFile))
		if err != nil {
			return nil, infer.Wrap(infer.KindInternal, err, "onnxlocal: model %q version %q", model, want)
		}
		if m.Role != r {
			return nil, infer.Errorf(infer.KindInternal, "onnxlocal: %s: manifest role %q, want %q", d, m.Role, r)
		}
		out.dirs[r] = d
		out.manifests[r] = m
	}
	ref := out.manifests[graphs.Prefill]
	for _, r := range graphs.Roles {
		m := out.manifests[r]
		if m.ModelVersion != ref.ModelVersion || m.TokenizerVersion != ref.TokenizerVersion {
			return nil, infer.Errorf(infer.KindInternal,
				"onnxlocal: model %q version %q: %s graph exported from %s + %s, prefill from %s + %s",
				model, want, r, m.ModelVersion, m.TokenizerVersion, ref.ModelVersion, ref.TokenizerVersion)
		}
	}
	return out, nil
}

// complete reports whether a version folder holds a graph and its manifest.
func complete(dir string) bool {
	for _, f := range []string{modelFile, manifestFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// highestCommonVersion returns the largest numeric version folder that is
// complete for every role, or "" if there is none.
func highestCommonVersion(roleDirs map[graphs.Role]string) (string, error) {
	best, bestName := int64(-1), ""
	entries, err := os.ReadDir(roleDirs[graphs.Roles[0]])
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", infer.Wrap(infer.KindInternal, err, "onnxlocal: reading %s", roleDirs[graphs.Roles[0]])
	}
	for _, e := range entries {
		n, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || n < 0 || !e.IsDir() || n <= best {
			continue
		}
		ok := true
		for _, r := range graphs.Roles {
			if !complete(filepath.Join(roleDirs[r], e.Name())) {
				ok = false
				break
			}
		}
		if ok {
			best, bestName = n, e.Name()
		}
	}
	return bestName, nil
}
