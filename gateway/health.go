package gateway

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/triton"
)

// Health routes. GET /v1/healthz (liveness) is in api.go.
const (
	RouteReadyz          = "/v1/readyz"
	RouteHealthzDetailed = "/v1/healthz/detailed"
)

// readyCheckTimeout bounds a backend's own readiness check (Triton's
// ServerReady) during GET /v1/readyz.
const readyCheckTimeout = 2 * time.Second

// warnPercent is the memory or disk use, in percent, from which
// /v1/healthz/detailed reports a warning (the seed's threshold).
const warnPercent = 90

// processStart is when the process started serving (package init).
var processStart = time.Now()

// Readiness states, the "status" of GET /v1/readyz.
const (
	readyOK          = "ok"
	readyLoading     = "loading"
	readyDraining    = "draining"
	readyUnavailable = "unavailable"
)

// errLoading answers forecasts while Run loads the models at start.
var errLoading = rejected(ReasonNotReady,
	infer.Errorf(infer.KindUnavailable, "the model is loading; retry shortly"))

// readyChecker is implemented by backends that can tell whether they can
// serve now, e.g. the Triton backend (ServerReady). Backends without it
// are ready once loaded.
type readyChecker interface {
	Ready(ctx context.Context) error
}

// readyResponse is the body of GET /v1/readyz, 200 or 503. The first four
// fields are the seed's; the model fields describe the default model.
type readyResponse struct {
	Status           string       `json:"status"`
	ModelLoaded      bool         `json:"model_loaded"`
	Device           *string      `json:"device"`
	DeviceWarning    *string      `json:"device_warning"`
	Model            string       `json:"model"`
	ModelVersion     string       `json:"model_version"`
	TokenizerVersion string       `json:"tokenizer_version"`
	Backend          string       `json:"backend"`
	Reason           string       `json:"reason,omitempty"`
	Models           []modelState `json:"models"`
}

// modelState is one model in readyResponse.
type modelState struct {
	Model            string `json:"model"`
	ModelVersion     string `json:"model_version"`
	TokenizerVersion string `json:"tokenizer_version"`
	Backend          string `json:"backend"`
	Device           string `json:"device"`
	Ready            bool   `json:"ready"`
	// Loading is the version the admin API is loading for this model
	// (admin.go), while it loads; the current version serves meanwhile.
	Loading string `json:"loading,omitempty"`
}

// routeHealth registers the readiness and detailed health routes.
func (a *App) routeHealth() {
	a.route(fiber.MethodGet, RouteReadyz, a.readyz)
	a.route(fiber.MethodGet, RouteHealthzDetailed, a.healthzDetailed)
}

// readyz answers readiness: 503 with Retry-After while the models load at
// start, while the server drains, or when a model's backend is not usable
// (its Ready check fails, or the models are closed); 200 otherwise, also
// while the admin API loads another version (the current one serves; the
// model's "loading" names the version). For a Triton model the check is
// the circuit breaker's: Triton and the four models ready at the pinned
// version (ModelReady), or the fallback while the breaker is open; an open
// breaker without a fallback is 503 with the rest of its open period as
// Retry-After. Every call refreshes kronos_backend_ready.
func (a *App) readyz(c *fiber.Ctx) error {
	loading := a.starting.Load()
	resp := readyResponse{Status: readyOK, ModelLoaded: !loading, Models: []modelState{}}
	def := a.models.Default()
	var notReady error
	for _, name := range a.models.Names() {
		info, _ := a.models.Info(name)
		st := modelState{Model: info.Name, ModelVersion: info.ModelVersion, TokenizerVersion: info.TokenizerVersion,
			Backend: info.Backend, Device: info.Device, Loading: a.admin.loadingVersion(name)}
		if loading {
			st.ModelVersion, st.TokenizerVersion, st.Device = "", "", ""
		} else {
			err := a.backendReady(c.UserContext(), name)
			st.Ready = err == nil
			a.metrics.setReady(info.Backend, info.Name, st.Ready)
			if err != nil && notReady == nil {
				notReady = fmt.Errorf("model %q: %w", name, err)
			}
		}
		if name == def {
			resp.Model, resp.ModelVersion, resp.TokenizerVersion = st.Model, st.ModelVersion, st.TokenizerVersion
			resp.Backend = st.Backend
			if !loading {
				d := st.Device
				resp.Device = &d
			}
		}
		resp.Models = append(resp.Models, st)
	}
	switch {
	case a.draining.Load():
		resp.Status, resp.Reason = readyDraining, "the server is shutting down"
	case loading:
		resp.Status, resp.Reason = readyLoading, "the models are loading"
	case notReady != nil:
		resp.Status, resp.Reason = readyUnavailable, notReady.Error()
	}
	if resp.Status != readyOK {
		retry := retryAfterUnavailable
		if d, ok := triton.RetryAfter(notReady); ok && resp.Status == readyUnavailable {
			retry = retryAfterSeconds(d) // the rest of the breaker's open period
		}
		c.Status(fiber.StatusServiceUnavailable)
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retry))
		c.Locals(localOutcome, string(infer.KindUnavailable))
	}
	return sendJSON(c, resp) // keeps the status set above
}

// backendReady asks the backend serving name whether it can serve now.
func (a *App) backendReady(ctx context.Context, name string) error {
	l, err := a.models.acquire(name)
	if err != nil {
		return err
	}
	defer l.release()
	rc, ok := l.backend().(readyChecker)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
	defer cancel()
	return rc.Ready(ctx)
}

// notLoading is a middleware that answers the forecast routes with 503
// (reason not_ready) while Run loads the models at start.
func (a *App) notLoading(c *fiber.Ctx) error {
	if a.starting.Load() && strings.HasPrefix(c.Path(), forecastRoutePrefix) {
		return errLoading
	}
	return c.Next()
}

// startLoading marks the App as loading its models (Run, before it
// listens): forecasts get 503 not_ready, /v1/readyz 503 "loading", and the
// placeholder models are reported not ready in the metrics.
func (a *App) startLoading() {
	a.starting.Store(true)
	for _, info := range a.models.Infos() {
		a.metrics.dropModel(info)
		a.metrics.setReady(info.Backend, info.Name, false)
	}
}

// finishLoading ends startLoading once every model is swapped in.
func (a *App) finishLoading() { a.starting.Store(false) }

// pendingBackend holds a model's slot in the registry while Run loads it:
// Info names the model, and every model call fails with errLoading. Run
// swaps the loaded backend in (Models.Swap).
type pendingBackend struct{ info infer.ModelInfo }

func (p pendingBackend) Info() infer.ModelInfo { return p.info }
func (p pendingBackend) Encode(context.Context, []float32, int, int) ([]float32, error) {
	return nil, errLoading
}
func (p pendingBackend) Decode(context.Context, []int64, []int64, int, int) ([]float32, error) {
	return nil, errLoading
}
func (p pendingBackend) NewSession(context.Context, int) (infer.Session, error) {
	return nil, errLoading
}
func (p pendingBackend) Ready(context.Context) error { return errLoading }
func (p pendingBackend) Close() error                { return nil }

// detailedHealth is the body of GET /v1/healthz/detailed, the seed's
// Phase 5 report.
type detailedHealth struct {
	Status        string       `json:"status"` // healthy | degraded
	Timestamp     string       `json:"timestamp"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	Checks        healthChecks `json:"checks"`
}

type healthChecks struct {
	Model  modelCheck  `json:"model"`
	Memory memoryCheck `json:"memory"`
	Disk   diskCheck   `json:"disk"`
}

type modelCheck struct {
	Status  string  `json:"status"`
	Loaded  bool    `json:"loaded"`
	Version *string `json:"version"`
	Name    string  `json:"name"`
}

// memoryCheck reports the process's resident memory and the system's, in
// MiB (the seed's "mb").
type memoryCheck struct {
	Status            string  `json:"status"`
	ProcessMB         float64 `json:"process_mb"`
	SystemTotalMB     float64 `json:"system_total_mb"`
	SystemAvailableMB float64 `json:"system_available_mb"`
	SystemPercent     float64 `json:"system_percent"`
	Error             string  `json:"error,omitempty"`
}

// diskCheck reports the filesystem of the model repository, in GiB (the
// seed's "gb").
type diskCheck struct {
	Status  string  `json:"status"`
	Path    string  `json:"path"`
	TotalGB float64 `json:"total_gb"`
	FreeGB  float64 `json:"free_gb"`
	Percent float64 `json:"percent"`
	Error   string  `json:"error,omitempty"`
}

// Check statuses.
const (
	checkOK      = "ok"
	checkWarning = "warning"
	checkUnknown = "unknown"
)

// healthzDetailed serves GET /v1/healthz/detailed: always 200 while the
// process serves; "degraded" when any check is not ok.
func (a *App) healthzDetailed(c *fiber.Ctx) error {
	now := time.Now()
	info, _ := a.models.Info("")
	mc := modelCheck{Status: checkOK, Loaded: !a.starting.Load(), Name: info.Name}
	if mc.Loaded {
		v := info.ModelVersion
		mc.Version = &v
		if err := a.backendReady(c.UserContext(), info.Name); err != nil {
			mc.Status = readyUnavailable
		}
	} else {
		mc.Status = readyLoading
	}
	r := detailedHealth{
		Status:        "healthy",
		Timestamp:     now.UTC().Format(time.RFC3339Nano),
		UptimeSeconds: roundTo(now.Sub(processStart).Seconds(), 3),
		Checks: healthChecks{
			Model:  mc,
			Memory: memoryStatus("/proc"),
			Disk:   diskStatus(a.opts.ModelRepository),
		},
	}
	for _, s := range []string{r.Checks.Model.Status, r.Checks.Memory.Status, r.Checks.Disk.Status} {
		if s != checkOK {
			r.Status = "degraded"
		}
	}
	return sendJSON(c, r)
}

// memoryStatus reads the process's VmRSS from proc/self/status and the
// system's MemTotal and MemAvailable from proc/meminfo (proc is "/proc"
// outside tests).
func memoryStatus(proc string) memoryCheck {
	m := memoryCheck{Status: checkUnknown}
	status, err := procKB(proc+"/self/status", "VmRSS")
	if err != nil {
		m.Error = err.Error()
		return m
	}
	meminfo, err := procKB(proc+"/meminfo", "MemTotal", "MemAvailable")
	if err != nil {
		m.Error = err.Error()
		return m
	}
	total, avail := meminfo["MemTotal"], meminfo["MemAvailable"]
	if total <= 0 || avail > total {
		m.Error = fmt.Sprintf("implausible meminfo: MemTotal %v kB, MemAvailable %v kB", total, avail)
		return m
	}
	m.ProcessMB = roundTo(status["VmRSS"]/1024, 1)
	m.SystemTotalMB = roundTo(total/1024, 1)
	m.SystemAvailableMB = roundTo(avail/1024, 1)
	used := 100 * (total - avail) / total
	m.SystemPercent = roundTo(used, 1)
	m.Status = percentStatus(used)
	return m
}

// procKB reads "Key:   123 kB" lines of a /proc file; every key must be
// present.
func procKB(path string, keys ...string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	out := make(map[string]float64, len(keys))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !want[k] {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: bad %s value %q", path, k, v)
		}
		out[k] = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("%s: no %s", path, k)
		}
	}
	return out, nil
}

// diskStatus reports the filesystem that holds dir.
func diskStatus(dir string) diskCheck {
	d := diskCheck{Status: checkUnknown, Path: dir}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		d.Error = err.Error()
		return d
	}
	return diskUsage(dir, uint64(st.Blocks)*uint64(st.Bsize), uint64(st.Bavail)*uint64(st.Bsize))
}

// diskUsage builds the disk check from the filesystem's size and the bytes
// available to the process.
func diskUsage(dir string, total, free uint64) diskCheck {
	d := diskCheck{Status: checkUnknown, Path: dir}
	if total == 0 || free > total {
		d.Error = fmt.Sprintf("implausible filesystem size: %d bytes, %d free", total, free)
		return d
	}
	const gib = 1 << 30
	d.TotalGB = roundTo(float64(total)/gib, 2)
	d.FreeGB = roundTo(float64(free)/gib, 2)
	used := 100 * float64(total-free) / float64(total)
	d.Percent = roundTo(used, 1)
	d.Status = percentStatus(used)
	return d
}

// percentStatus is "warning" from warnPercent on, else "ok" (on the
// unrounded share: 89.99 % is ok although it is reported as 90).
func percentStatus(p float64) string {
	if p >= warnPercent {
		return checkWarning
	}
	return checkOK
}

// roundTo rounds v to n decimals (reports, not arithmetic).
func roundTo(v float64, n int) float64 {
	s := strconv.FormatFloat(v, 'f', n, 64)
	r, _ := strconv.ParseFloat(s, 64)
	return r
}
