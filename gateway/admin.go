package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/triton"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
)

// This file is the admin API: hot swaps of model versions, behind admin
// keys (KRONOS_ADMIN_API_KEYS). Without admin keys none of its routes is
// served.

// Admin routes.
const (
	RouteAdminModels = "/v1/admin/models"
	RouteAdminLoad   = "/v1/admin/models/:name/load"
	RouteAdminUnload = "/v1/admin/models/:name/unload"
)

// adminPrefix starts every admin path.
const adminPrefix = "/v1/admin"

// isAdminPath reports whether path is under /v1/admin.
func isAdminPath(path string) bool {
	return path == adminPrefix || strings.HasPrefix(path, adminPrefix+"/")
}

// Repository states of GET /v1/admin/models. Triton's index uses the same
// words (and others, e.g. LOADING).
const (
	stateReady       = "READY"
	stateUnavailable = "UNAVAILABLE"
)

// admin holds the admin keys and serialises admin operations.
type admin struct {
	// digests are the SHA-256 of the admin keys.
	digests [][sha256.Size]byte
	// sem lets one load or unload run at a time (of any model).
	sem chan struct{}
	// loading maps a model to the version being loaded.
	mu      sync.Mutex
	loading map[string]string
}

// newAdmin returns nil without admin keys (the admin API is off). Admin
// keys must differ from the client keys, those of the keys file included.
func newAdmin(o Options, client *auth) (*admin, error) {
	if len(o.AdminAPIKeys) == 0 {
		return nil, nil
	}
	ad := &admin{sem: make(chan struct{}, 1), loading: map[string]string{}}
	for i, k := range o.AdminAPIKeys {
		d := sha256.Sum256([]byte(k))
		for _, c := range client.digests {
			if c == d {
				return nil, fmt.Errorf("KRONOS_ADMIN_API_KEYS: key %d is also a client key (KRONOS_API_KEYS or KRONOS_API_KEYS_FILE); admin keys must be separate", i+1)
			}
		}
		ad.digests = append(ad.digests, d)
	}
	return ad, nil
}

// match reports whether key is an admin key, comparing every digest in
// constant time.
func (ad *admin) match(key string) ([sha256.Size]byte, bool) {
	d := sha256.Sum256([]byte(key))
	found := 0
	for i := range ad.digests {
		found |= subtle.ConstantTimeCompare(d[:], ad.digests[i][:])
	}
	return d, found == 1
}

// lock waits for the admin operation in progress, if any, within ctx.
func (ad *admin) lock(ctx context.Context) (unlock func(), err error) {
	select {
	case ad.sem <- struct{}{}:
		return func() { <-ad.sem }, nil
	case <-ctx.Done():
		return nil, infer.Wrap(infer.KindOf(infer.FromContext(ctx.Err())), ctx.Err(),
			"another admin operation did not finish in time")
	}
}

// loadingVersion is the version being loaded for model ("" when none, or
// when the admin API is off).
func (ad *admin) loadingVersion(model string) string {
	if ad == nil {
		return ""
	}
	ad.mu.Lock()
	defer ad.mu.Unlock()
	return ad.loading[model]
}

func (ad *admin) setLoading(model, version string) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if version == "" {
		delete(ad.loading, model)
	} else {
		ad.loading[model] = version
	}
}

var (
	errNoAdminKey = infer.Errorf(infer.KindUnauthorized,
		"the admin API needs an admin key (KRONOS_ADMIN_API_KEYS): send it as the X-API-Key header or as Authorization: Bearer <key>")
	errWrongAdminKey = infer.Errorf(infer.KindUnauthorized, "the admin key is not valid")
)

// authenticateAdmin is the authentication of paths under /v1/admin (called
// by authenticate): an admin key is required, a client key is refused
// (401), and there is no rate limit.
func (a *App) authenticateAdmin(c *fiber.Ctx) error {
	key, ok := presentedKey(c)
	if !ok {
		return rejected(ReasonUnauthorized, errNoAdminKey)
	}
	d, ok := a.admin.match(key)
	if !ok {
		return rejected(ReasonUnauthorized, errWrongAdminKey)
	}
	c.Locals(localKeyID, keyID(d))
	return c.Next()
}

// routeAdmin registers the admin routes when admin keys are configured.
func (a *App) routeAdmin() {
	if a.admin == nil {
		return
	}
	a.route(fiber.MethodGet, RouteAdminModels, a.adminModels)
	a.route(fiber.MethodPost, RouteAdminLoad, a.adminLoad)
	a.route(fiber.MethodPost, RouteAdminUnload, a.adminUnload)
}

// adminModel describes one model served, for the admin API.
type adminModel struct {
	Name             string `json:"name"`
	Default          bool   `json:"default"`
	Backend          string `json:"backend"`
	Version          string `json:"version"`
	ModelVersion     string `json:"model_version"`
	TokenizerVersion string `json:"tokenizer_version"`
	Device           string `json:"device"`
	// Ready is the readiness check of /v1/readyz for this model; Reason
	// says why not.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// Loading is the version being loaded ("latest" when the load named
	// none), while a load runs.
	Loading string `json:"loading,omitempty"`
	// Repository lists the versions the backend could serve: the version
	// folders of KRONOS_MODEL_REPOSITORY (embedded), or Triton's
	// repository index of the model's four Triton models.
	Repository      []repositoryEntry `json:"repository"`
	RepositoryError string            `json:"repository_error,omitempty"`
}

// repositoryEntry is one model version in a repository.
type repositoryEntry struct {
	// Name is the model (embedded: one version spans the five graphs) or
	// the Triton model.
	Name    string `json:"name"`
	Version string `json:"version"`
	// State is READY (serving), UNAVAILABLE (not loaded), or Triton's
	// state (LOADING, UNLOADING, ...).
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// ModelVersion identifies the weights of an embedded version folder.
	ModelVersion string `json:"model_version,omitempty"`
}

// modelRef identifies the weights a model served before a swap.
type modelRef struct {
	Version          string `json:"version"`
	ModelVersion     string `json:"model_version"`
	TokenizerVersion string `json:"tokenizer_version"`
}

type adminModelsResponse struct {
	Models []adminModel `json:"models"`
}

type adminLoadResponse struct {
	Model    adminModel `json:"model"`
	Previous modelRef   `json:"previous"`
}

type adminUnloadResponse struct {
	Model adminModel `json:"model"`
}

// loadRequest is the body of POST /v1/admin/models/{name}/load:
//
//	{"version": "2", "overrides": {"kronos-nano-window": {"config": {...}, "files": {"2/model.onnx": "<base64>"}}}}
//
// Both fields are optional. overrides apply to the Triton backend only;
// config is a Triton ModelConfig in JSON (proto field names), files maps
// paths inside the model folder to base64 contents, and Triton requires a
// config with files.
type loadRequest struct {
	Version   string                  `json:"version"`
	Overrides map[string]loadOverride `json:"overrides"`
}

type loadOverride struct {
	Config json.RawMessage   `json:"config"`
	Files  map[string][]byte `json:"files"`
}

// unloadRequest is the body of POST /v1/admin/models/{name}/unload
// (optional): {"version": "1"}.
type unloadRequest struct {
	Version string `json:"version"`
}

// decodeAdminBody decodes an admin request body strictly into v (unknown
// keys and trailing data are rejected); an empty body leaves v as is.
func decodeAdminBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("data after the JSON value")
	}
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return infer.Field(te.Field, "want %s, got JSON %s", te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		key, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return infer.Field(key, "unknown key")
	}
	return infer.Errorf(infer.KindInvalid, "the body is not a valid admin request: %v", err)
}

// checkVersion accepts "" (none) or a model-repository version: a positive
// integer without leading zeros (Triton ignores other folder names).
func checkVersion(v string) error {
	if v == "" {
		return nil
	}
	ok := len(v) <= 18 && v[0] >= '1' && v[0] <= '9'
	for i := 0; ok && i < len(v); i++ {
		ok = v[i] >= '0' && v[i] <= '9'
	}
	if !ok {
		return infer.Field("version", "%q is not a version: want a positive integer such as \"2\"", clip(v))
	}
	return nil
}

// adminModelName returns the {name} of an admin route, which must be a
// loaded model (404 otherwise).
func (a *App) adminModelName(c *fiber.Ctx) (string, error) {
	name := strings.Clone(c.Params("name"))
	if _, ok := a.models.Info(name); !ok {
		return "", infer.Errorf(infer.KindNotFound, "unknown model %q; loaded models: %s",
			clip(name), strings.Join(a.models.Names(), ", "))
	}
	return name, nil
}

// adminContext bounds an admin operation by KRONOS_STARTUP_TIMEOUT and
// ends it when the shutdown grace period runs out. (The request's own
// context is bounded by KRONOS_REQUEST_TIMEOUT, often shorter than a
// Triton load that builds TensorRT engines.)
func (a *App) adminContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.StartupTimeout)
	stop := context.AfterFunc(a.stopCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// servingNow returns the backend serving name now and its description.
func (a *App) servingNow(name string) (infer.Backend, infer.ModelInfo, error) {
	l, err := a.models.acquire(name)
	if err != nil {
		return nil, infer.ModelInfo{}, err
	}
	defer l.release()
	return l.backend(), l.info(), nil
}

// adminModels serves GET /v1/admin/models: every model served, with its
// version, weights, readiness and repository.
func (a *App) adminModels(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), a.opts.RequestTimeout)
	defer cancel()
	resp := adminModelsResponse{Models: []adminModel{}}
	for _, name := range a.models.Names() {
		resp.Models = append(resp.Models, a.describeModel(ctx, name))
	}
	return sendJSON(c, resp)
}

// describeModel reports one model for the admin API.
func (a *App) describeModel(ctx context.Context, name string) adminModel {
	info, _ := a.models.Info(name)
	m := adminModel{Name: name, Default: name == a.models.Default(), Backend: info.Backend, Version: info.Version,
		ModelVersion: info.ModelVersion, TokenizerVersion: info.TokenizerVersion, Device: info.Device,
		Loading: a.admin.loadingVersion(name), Repository: []repositoryEntry{}}
	if a.starting.Load() {
		m.Reason = "the models are loading"
	} else if err := a.backendReady(ctx, name); err != nil {
		m.Reason = err.Error()
	} else {
		m.Ready = true
	}
	repo, err := a.repository(ctx, name)
	if err != nil {
		m.RepositoryError = err.Error()
	} else if repo != nil {
		m.Repository = repo
	}
	return m
}

// repository lists the versions the backend of name could serve.
func (a *App) repository(ctx context.Context, name string) ([]repositoryEntry, error) {
	b, info, err := a.servingNow(name)
	if err != nil {
		return nil, err
	}
	switch v := b.(type) {
	case *tritonView:
		return tritonRepository(ctx, v.s.control)
	case pendingBackend:
		if a.opts.BackendKind() != BackendEmbedded {
			return nil, errors.New("the model is loading")
		}
	}
	return embeddedRepository(a.opts.ModelRepository, name, info.Version)
}

// tritonRepository is Triton's repository index for the four Triton
// models of tb, in Triton's order.
func tritonRepository(ctx context.Context, tb *triton.Backend) ([]repositoryEntry, error) {
	idx, err := tb.Index(ctx, false)
	if err != nil {
		return nil, err
	}
	mine := tb.Models()
	out := []repositoryEntry{}
	for _, m := range idx {
		if slices.Contains(mine, m.Name) {
			out = append(out, repositoryEntry{Name: m.Name, Version: m.Version, State: m.State, Reason: m.Reason})
		}
	}
	return out, nil
}

// Files of an embedded version folder (internal/onnxlocal).
const (
	embeddedModelFile    = "model.onnx"
	embeddedManifestFile = "kronos.json"
)

// embeddedRepository lists the version folders of model in repo: every
// numeric folder of the prefill graph, in version order, READY when it is
// serving, else UNAVAILABLE ("not loaded", or "incomplete" when one of the
// five graphs lacks its files), with the model_version of its manifest.
func embeddedRepository(repo, model, serving string) ([]repositoryEntry, error) {
	entries, err := os.ReadDir(filepath.Join(repo, graphs.ModelName(model, graphs.Prefill)))
	if err != nil {
		return nil, err
	}
	type version struct {
		n    uint64
		name string
	}
	var vs []version
	for _, e := range entries {
		if e.IsDir() && checkVersion(e.Name()) == nil {
			n, _ := strconv.ParseUint(e.Name(), 10, 64)
			vs = append(vs, version{n, e.Name()})
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].n < vs[j].n })
	out := make([]repositoryEntry, 0, len(vs))
	for _, v := range vs {
		e := repositoryEntry{Name: model, Version: v.name, State: stateUnavailable, Reason: "not loaded"}
		for _, r := range graphs.Roles {
			dir := filepath.Join(repo, graphs.ModelName(model, r), v.name)
			if !regularFile(filepath.Join(dir, embeddedModelFile)) || !regularFile(filepath.Join(dir, embeddedManifestFile)) {
				e.Reason = fmt.Sprintf("incomplete: %s/%s has no %s and %s",
					graphs.ModelName(model, r), v.name, embeddedModelFile, embeddedManifestFile)
				break
			}
		}
		if man, err := graphs.ReadManifest(filepath.Join(repo, graphs.ModelName(model, graphs.Prefill), v.name, embeddedManifestFile)); err == nil {
			e.ModelVersion = man.ModelVersion
		}
		if v.name == serving {
			e.State, e.Reason = stateReady, ""
		}
		out = append(out, e)
	}
	return out, nil
}

func regularFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// adminLoad serves POST /v1/admin/models/{name}/load: it loads a version
// of the model and swaps it in for new forecasts; forecasts in flight
// finish on the version they started with. It answers once the new version
// serves (and, embedded, once the old one is closed).
//
//   - embedded: the version folder (default: the highest complete one) is
//     opened with ONNX Runtime beside the one serving, then Models.Swap
//     installs it atomically; the old backend is closed after its last
//     forecast.
//   - triton: RepositoryModelLoad of each of the four Triton models (with
//     the overrides of the body), then the client pins the highest version
//     ready for all four for new sessions; sessions in flight keep theirs.
//     A version named in the body must then be ready (404 when Triton's
//     repository lacks it) and be the one pinned (422 otherwise: a higher
//     version is still loaded).
func (a *App) adminLoad(c *fiber.Ctx) error {
	var req loadRequest
	name, ctx, done, err := a.beginAdmin(c, &req, func() string { return req.Version })
	if err != nil {
		return err
	}
	defer done()
	cur, prev, err := a.servingNow(name)
	if err != nil {
		return err
	}
	a.admin.setLoading(name, orDefault(req.Version, "latest"))
	defer a.admin.setLoading(name, "")
	a.log.Info("admin: loading model", slog.String("model", name), slog.String("version", req.Version),
		slog.String("backend", prev.Backend), slog.String("serving_version", prev.Version))

	var next infer.Backend
	if tv, ok := cur.(*tritonView); ok {
		next, err = loadTriton(ctx, tv, req)
	} else if len(req.Overrides) > 0 {
		err = infer.Field("overrides", "config and file overrides apply to the triton backend only; model %q runs on %s", name, prev.Backend)
	} else {
		o := a.opts
		o.Model, o.ModelVersion = name, req.Version
		next, err = openEmbedded(o)
		if err == nil && next.Info().Name != name {
			_ = next.Close()
			err = infer.Errorf(infer.KindInternal, "the backend of version %s reports the model name %q", req.Version, next.Info().Name)
		}
	}
	if err != nil {
		a.log.Warn("admin: loading the model failed", slog.String("model", name), slog.String("version", req.Version),
			slog.String("error", err.Error()))
		return err
	}
	if err := a.models.Swap(name, next); err != nil {
		if !a.models.serves(name, next) {
			_ = next.Close()
			return err
		}
		// Swapped in; only closing the old backend failed.
		a.log.Warn("admin: closing the previous backend failed", slog.String("model", name), slog.String("error", err.Error()))
	}
	info, _ := a.models.Info(name)
	a.log.Info("admin: model swapped", slog.String("model", name),
		slog.String("previous_version", prev.Version), slog.String("previous_model_version", prev.ModelVersion),
		slog.String("version", info.Version), slog.String("model_version", info.ModelVersion),
		slog.String("backend", info.Backend))
	a.admin.setLoading(name, "")
	return sendJSON(c, adminLoadResponse{Model: a.describeModel(ctx, name),
		Previous: modelRef{Version: prev.Version, ModelVersion: prev.ModelVersion, TokenizerVersion: prev.TokenizerVersion}})
}

// loadTriton loads the four Triton models of v's model with the overrides
// of req (on the control client, not through the breaker), then connects
// a serving client pinned to the highest version now ready for all four
// and returns its view. Forecasts of v keep v's version: its client does
// not move.
func loadTriton(ctx context.Context, v *tritonView, req loadRequest) (infer.Backend, error) {
	tb := v.s.control
	models := tb.Models()
	opts := make(map[string]triton.LoadOptions, len(req.Overrides))
	for key, ov := range req.Overrides {
		field := "overrides." + key
		if !slices.Contains(models, key) {
			return nil, infer.Field(clip(field), "is not one of the Triton models of %s: %s", v.info.Name, strings.Join(models, ", "))
		}
		var lo triton.LoadOptions
		if len(ov.Config) > 0 && string(ov.Config) != "null" {
			cfg := &pb.ModelConfig{}
			if err := protojson.Unmarshal(ov.Config, cfg); err != nil {
				return nil, infer.Field(field+".config", "is not a Triton model config (JSON, proto field names): %v", err)
			}
			lo.Config = cfg
		}
		lo.Files = ov.Files
		opts[key] = lo
	}
	for _, m := range models {
		if err := tb.Load(ctx, m, opts[m]); err != nil {
			return nil, err
		}
	}
	if req.Version != "" {
		for _, m := range models {
			ok, err := tb.ModelReady(ctx, m, req.Version)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, versionNotReady(ctx, tb, m, req.Version)
			}
		}
	}
	next, err := v.s.open(ctx)
	if err != nil {
		return nil, err
	}
	if req.Version != "" && next.info.Version != req.Version {
		_ = next.Close()
		return nil, infer.Errorf(infer.KindInvalid,
			"version %s of model %q is loaded, but the highest version ready for all its Triton models is %s, and new forecasts use that one; "+
				"to serve %s, unload the others or load with a config override whose version_policy selects it",
			req.Version, v.info.Name, next.info.Version, req.Version)
	}
	// Triton itself, not the breaker: an open breaker must not refuse the
	// version that may end the outage.
	if err := next.client.Ready(ctx); err != nil {
		_ = next.Close()
		return nil, err
	}
	return next, nil
}

// versionNotReady explains why version of Triton model m is not ready
// after a load: absent from the repository (404), or not kept by its
// version policy (422).
func versionNotReady(ctx context.Context, tb *triton.Backend, m, version string) error {
	idx, err := tb.Index(ctx, false)
	if err != nil {
		return err
	}
	for _, e := range idx {
		if e.Name == m && e.Version == version {
			return infer.Errorf(infer.KindInvalid,
				"version %s of %s is %s after the load (%s): its version policy does not select it; load with a config override whose version_policy does",
				version, m, e.State, e.Reason)
		}
	}
	return infer.Errorf(infer.KindNotFound, "Triton's repository has no version %s of %s", version, m)
}

// adminUnload serves POST /v1/admin/models/{name}/unload.
//
//   - triton: RepositoryModelUnload of the model's four Triton models (every
//     version); the model then stops serving (readiness 503, forecasts 503
//     or the fallback) until a load. A version in the body is refused
//     (422): Triton unloads whole models.
//   - embedded: a model always serves exactly one version, so unloading it
//     is refused (422; 404 when the body names a version not loaded). Load
//     another version to replace it.
func (a *App) adminUnload(c *fiber.Ctx) error {
	var req unloadRequest
	name, ctx, done, err := a.beginAdmin(c, &req, func() string { return req.Version })
	if err != nil {
		return err
	}
	defer done()
	cur, info, err := a.servingNow(name)
	if err != nil {
		return err
	}
	tv, ok := cur.(*tritonView)
	if !ok {
		if req.Version != "" && req.Version != info.Version {
			return infer.Errorf(infer.KindNotFound, "version %s of model %q is not loaded; it serves version %s", req.Version, name, info.Version)
		}
		return infer.Errorf(infer.KindInvalid,
			"refusing to unload version %s of model %q: it is the only version loaded (the %s backend serves one version per model); "+
				"load another version instead (POST %s/models/%s/load), which replaces it", info.Version, name, info.Backend, adminPrefix, name)
	}
	if req.Version != "" {
		return infer.Field("version", "Triton unloads every version of a model's graphs; to drop one version, load with a config override whose version_policy leaves it out")
	}
	for _, m := range tv.s.control.Models() {
		if err := tv.s.control.Unload(ctx, m, false); err != nil {
			return err
		}
	}
	a.metrics.setReady(info.Backend, name, false)
	a.log.Warn("admin: model unloaded; it serves no forecast until a load", slog.String("model", name),
		slog.String("backend", info.Backend), slog.Any("triton_models", tv.s.control.Models()))
	return sendJSON(c, adminUnloadResponse{Model: a.describeModel(ctx, name)})
}

// serves reports whether b is the backend of model name now.
func (m *Models) serves(name string, b infer.Backend) bool {
	s, ok := m.slots[name]
	return ok && s.cur.Load().backend == b
}

// beginAdmin is the common start of a model operation: the model name from
// the path, the body decoded into req with its version (read by version)
// checked, the lifecycle checks (503 while starting or draining), and the
// admin lock taken under the admin deadline. done releases the lock and the
// deadline; it is nil when err is not.
func (a *App) beginAdmin(c *fiber.Ctx, req any, version func() string) (name string, ctx context.Context, done func(), err error) {
	if name, err = a.adminModelName(c); err != nil {
		return "", nil, nil, err
	}
	if err = decodeAdminBody(c.Request().Body(), req); err != nil {
		return "", nil, nil, err
	}
	if err = checkVersion(version()); err != nil {
		return "", nil, nil, err
	}
	if a.starting.Load() {
		return "", nil, nil, errLoading
	}
	if a.draining.Load() {
		return "", nil, nil, errDraining
	}
	ctx, cancel := a.adminContext()
	unlock, err := a.admin.lock(ctx)
	if err != nil {
		cancel()
		return "", nil, nil, err
	}
	return name, ctx, func() { unlock(); cancel() }, nil
}
