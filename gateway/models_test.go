package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/export"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
)

// namedFake is a fake backend with the given model name and version.
func namedFake(name, version string) *fakeBackend {
	fb := newFakeBackend()
	fb.info.Name, fb.info.Version = name, version
	fb.info.ModelVersion = name + "@" + version
	return fb
}

func TestModelsRegistry(t *testing.T) {
	a, b := namedFake("kronos-a", "1"), namedFake("kronos-b", "1")
	_, err := NewModels("kronos-a")
	require.Error(t, err)
	_, err = NewModels("kronos-a", a, namedFake("kronos-a", "2"))
	require.ErrorContains(t, err, `"kronos-a" is loaded twice`)
	_, err = NewModels("kronos-c", a, b)
	require.ErrorContains(t, err, `default model "kronos-c" is not among the loaded models (kronos-a, kronos-b)`)

	m, err := NewModels("kronos-b", b, a)
	require.NoError(t, err)
	require.Equal(t, []string{"kronos-a", "kronos-b"}, m.Names())
	require.Equal(t, "kronos-b", m.Default())
	info, ok := m.Info("")
	require.True(t, ok)
	require.Equal(t, "kronos-b", info.Name)

	l, err := m.acquire("")
	require.NoError(t, err)
	require.Same(t, b, l.backend())
	l.release()
	l.release() // idempotent
	l, err = m.acquire("kronos-a")
	require.NoError(t, err)
	require.Same(t, a, l.backend())
	l.release()

	_, err = m.acquire("kronos-large")
	var fe *infer.FieldError
	require.True(t, errors.As(err, &fe), "%v", err)
	require.Equal(t, "model", fe.Field)
	require.Equal(t, `unknown model "kronos-large"; loaded models: kronos-a, kronos-b`, fe.Reason)

	require.True(t, errors.Is(m.Swap("kronos-x", namedFake("kronos-x", "2")), infer.ErrNotFound))
	require.True(t, errors.Is(m.Swap("kronos-a", namedFake("kronos-b", "2")), infer.ErrInvalid))
	require.True(t, errors.Is(m.Swap("kronos-a", nil), infer.ErrInvalid))
	require.False(t, a.closed.Load(), "a refused swap leaves the model alone")

	require.NoError(t, m.Close())
	require.True(t, a.closed.Load())
	require.True(t, b.closed.Load())
	_, err = m.acquire("")
	require.True(t, errors.Is(err, infer.ErrUnavailable), "%v", err)
	require.NoError(t, m.Close(), "Close is idempotent")
	require.True(t, errors.Is(m.Swap("kronos-a", namedFake("kronos-a", "3")), infer.ErrUnavailable))
}

// TestModelsSwapWaitsForLeases: a swap switches at once, but closes the
// old backend only after the forecast that leased it released it, and
// returns only then.
func TestModelsSwapWaitsForLeases(t *testing.T) {
	v1, v2 := namedFake("kronos-a", "1"), namedFake("kronos-a", "2")
	m, err := NewModels("kronos-a", v1)
	require.NoError(t, err)
	held, err := m.acquire("kronos-a")
	require.NoError(t, err)

	swapped := make(chan error, 1)
	go func() { swapped <- m.Swap("kronos-a", v2) }()
	require.Eventually(t, func() bool { info, _ := m.Info("kronos-a"); return info.Version == "2" },
		testWait, testTick, "the switch does not wait for the lease")
	l, err := m.acquire("")
	require.NoError(t, err)
	require.Same(t, v2, l.backend(), "new forecasts get the new backend")
	l.release()

	select {
	case err := <-swapped:
		t.Fatalf("Swap returned (%v) while the old backend was leased", err)
	default:
	}
	require.False(t, v1.closed.Load(), "the old backend is closed while a forecast uses it")
	require.Same(t, v1, held.backend(), "the running forecast keeps its backend")
	held.release()
	require.NoError(t, <-swapped)
	require.True(t, v1.closed.Load())
	require.False(t, v2.closed.Load())
	require.NoError(t, m.Close())
	require.True(t, v2.closed.Load())
}

// closeCheckBackend fails the test's invariant when a call starts after
// Close.
type closeCheckBackend struct {
	*fakeBackend
	usedAfterClose *atomic.Int64
}

func (b closeCheckBackend) use() {
	if b.closed.Load() {
		b.usedAfterClose.Add(1)
	}
}

// TestModelsSwapRace hammers acquire/release against repeated swaps: no
// lease ever sees a closed backend, and every backend swapped out is
// closed exactly when its leases are gone. Run with -race.
func TestModelsSwapRace(t *testing.T) {
	var bad atomic.Int64
	first := closeCheckBackend{namedFake("kronos-a", "0"), &bad}
	m, err := NewModels("kronos-a", first)
	require.NoError(t, err)
	const workers, perWorker, swaps = 4, 200, 20
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				l, err := m.acquire("")
				if err != nil {
					bad.Add(1000)
					return
				}
				l.backend().(closeCheckBackend).use()
				l.backend().(closeCheckBackend).use()
				l.release()
			}
		}()
	}
	var old []closeCheckBackend
	old = append(old, first)
	for i := range swaps {
		b := closeCheckBackend{namedFake("kronos-a", string(rune('a'+i))), &bad}
		require.NoError(t, m.Swap("kronos-a", b))
		require.True(t, old[len(old)-1].closed.Load(), "swap %d returned before closing the old backend", i)
		old = append(old, b)
	}
	wg.Wait()
	require.Zero(t, bad.Load(), "a leased backend was used after Close (or acquire failed)")
	require.NoError(t, m.Close())
}

// TestModelSelection serves kronos-nano (default) beside a second model
// and routes requests by their "model" field; an unknown model is a 422
// naming the field and listing the loaded models.
func TestModelSelection(t *testing.T) {
	other := openExported(t, exportTiny(t, "kronos-tiny", "1"), "kronos-tiny")
	defer other.Close()
	nano := embeddedBackend(t)
	m, err := NewModels("kronos-nano", nano, other)
	require.NoError(t, err)
	a, err := New(NewOptions(), Deps{Models: m}) // the test closes the backends
	require.NoError(t, err)

	req := csvRequest(t, 0, 40, 4)
	r, _ := predictOK(t, a, req)
	require.Equal(t, "kronos-nano", r.Model)
	require.Equal(t, nano.Info().ModelVersion, r.ModelVersion)

	req["model"] = "kronos-tiny"
	r, _ = predictOK(t, a, req)
	require.Equal(t, "kronos-tiny", r.Model)
	require.Equal(t, other.Info().ModelVersion, r.ModelVersion)
	require.Equal(t, other.Info().TokenizerVersion, r.TokenizerVersion)
	require.NotEqual(t, nano.Info().ModelVersion, r.ModelVersion)

	req["model"] = "kronos-large"
	status, _, body := do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, req), nil)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%s", body)
	e := envelope(t, body)
	require.Equal(t, "model", e.Field)
	require.Contains(t, e.Message, "loaded models: kronos-nano, kronos-tiny")

	batch := map[string]any{"items": []any{csvRequest(t, 0, 20, 2), req}}
	status, _, body = do(t, a, http.MethodPost, RoutePredictBatch, mustJSON(t, batch), nil)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%s", body)
	require.Equal(t, "items[1].model", envelope(t, body).Field)

	// A batch may mix models; each item reports its own.
	a2 := csvRequest(t, 100, 30, 3)
	a2["model"] = "kronos-tiny"
	batch = map[string]any{"items": []any{csvRequest(t, 0, 20, 2), a2, csvRequest(t, 50, 25, 5)}}
	rs := batchOK(t, a, batch)
	require.Equal(t, []string{"kronos-nano", "kronos-tiny", "kronos-nano"}, []string{rs[0].Model, rs[1].Model, rs[2].Model})
}

// TestSwapUnderLoad swaps kronos-nano for another version while clients
// keep sending forecasts: no request fails, every request sent after the
// swap returned gets the new model_version, and the old backend is closed.
func TestSwapUnderLoad(t *testing.T) {
	lib := testLib(t)
	old, err := onnxlocal.Open(onnxlocal.Options{
		RepoDir: filepath.Join(moduleRoot, "model_repository"), Model: "kronos-nano", LibPath: lib, IntraOpThreads: 1,
	})
	require.NoError(t, err)
	// Version 2 of "kronos-nano" with other weights, so that its
	// model_version differs.
	repo := exportTiny(t, "kronos-nano", "2")
	next := openExported(t, repo, "kronos-nano")
	require.Equal(t, "2", next.Info().Version)
	require.NotEqual(t, old.Info().ModelVersion, next.Info().ModelVersion)

	m, err := NewModels("kronos-nano", old)
	require.NoError(t, err)
	defer m.Close()
	o := NewOptions()
	o.MaxConcurrency, o.QueueSize = 2, 16
	a, err := New(o, Deps{Models: m})
	require.NoError(t, err)
	body := mustJSON(t, csvRequest(t, 0, 40, 4))

	type result struct {
		status       int
		version      string
		afterSwap    bool
		responseBody string
	}
	var (
		swapDone atomic.Bool
		mu       sync.Mutex
		results  []result
		warm     sync.WaitGroup // each client's first request is done
	)
	const clients, minAfter = 3, 2
	warm.Add(clients)
	var afterSwap [clients]atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 200; n++ { // bounded, in case the swap never happens
				select {
				case <-stop:
					return
				default:
				}
				after := swapDone.Load()
				status, _, b := do(t, a, http.MethodPost, RoutePredictSingle, body, nil)
				var r predictResponse
				_ = json.Unmarshal(b, &r)
				mu.Lock()
				results = append(results, result{status, r.ModelVersion, after, string(b)})
				mu.Unlock()
				if n == 0 {
					warm.Done()
				}
				if after && afterSwap[c].Add(1) >= minAfter {
					return
				}
			}
		}()
	}
	warm.Wait() // some requests ran on the old version
	require.NoError(t, m.Swap("kronos-nano", next))
	swapDone.Store(true)
	wg.Wait()
	close(stop)

	require.Equal(t, next.Info(), a.backend.Info(), "the default view follows the swap")
	var before, after int
	for _, r := range results {
		require.Equal(t, http.StatusOK, r.status, "%s", r.responseBody)
		if r.afterSwap {
			after++
			require.Equal(t, next.Info().ModelVersion, r.version)
		} else if r.version == old.Info().ModelVersion {
			before++
		}
	}
	require.GreaterOrEqual(t, after, clients*minAfter)
	require.Positive(t, before, "some requests ran on the old version")
	_, err = old.Encode(context.Background(), make([]float32, 6), 1, 1)
	require.True(t, errors.Is(err, infer.ErrUnavailable), "the old backend is closed: %v", err)
}

// exportTiny exports the small conformance checkpoint as model name and
// version into a fresh repository and returns the repository folder.
func exportTiny(t testing.TB, name, version string) string {
	t.Helper()
	dir := t.TempDir()
	tiny := filepath.Join(moduleRoot, "testdata", "conformance", "models", "tiny")
	_, _, err := export.Job{
		Tokenizer: filepath.Join(tiny, "tokenizer"),
		Predictor: filepath.Join(tiny, "predictor"),
		Options:   export.Options{Dir: dir, Name: name, Version: version, MaxContext: 64},
	}.Run(context.Background())
	require.NoError(t, err)
	return dir
}

// openExported opens model name of repository dir on the embedded backend.
func openExported(t testing.TB, dir, name string) *onnxlocal.Backend {
	t.Helper()
	b, err := onnxlocal.Open(onnxlocal.Options{RepoDir: dir, Model: name, LibPath: testLib(t), IntraOpThreads: 1})
	require.NoError(t, err)
	return b
}

// batchOK posts a batch and decodes a 200 response strictly.
func batchOK(t testing.TB, a *App, m map[string]any) []predictResponse {
	t.Helper()
	status, h, body := do(t, a, http.MethodPost, RoutePredictBatch, mustJSON(t, m), nil)
	require.Equal(t, http.StatusOK, status, "body %s", body)
	require.Equal(t, "application/json", h.Get("Content-Type"))
	var raw []struct {
		predictResponse
		Prediction []wirePoint    `json:"prediction"`
		Quantiles  []wireQuantile `json:"quantiles"`
		Samples    [][]wirePoint  `json:"samples"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&raw), "body %s", body)
	out := make([]predictResponse, len(raw))
	for i, r := range raw {
		out[i] = r.predictResponse
		out[i].Prediction = toPoints(r.Prediction)
		for _, q := range r.Quantiles {
			out[i].Quantiles = append(out[i].Quantiles, quantilePath{Quantile: q.Quantile, Prediction: toPoints(q.Prediction)})
		}
		for _, p := range r.Samples {
			out[i].Samples = append(out[i].Samples, toPoints(p))
		}
	}
	return out
}
