package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the decoded JSON log lines.
func (s *syncBuffer) lines(t testing.TB) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "log line %q", l)
		out = append(out, m)
	}
	return out
}

func (s *syncBuffer) find(t testing.TB, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range s.lines(t) {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// serve starts run in the background, waits until it is ready (the models
// are loaded in the background after it listens) and returns the base URL
// and the channel that receives run's result.
func serve(t *testing.T, ctx context.Context, o Options, logs io.Writer, open func(Options) (infer.Backend, error)) (string, chan error) {
	t.Helper()
	base, done := serveLoading(t, ctx, o, logs, open)
	waitReady(t, base, done)
	return base, done
}

// serveLoading is serve without waiting for the models.
func serveLoading(t *testing.T, ctx context.Context, o Options, logs io.Writer, open func(Options) (infer.Backend, error)) (string, chan error) {
	t.Helper()
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, o, slog.New(slog.NewJSONHandler(logs, nil)), open, func(a net.Addr) { addrs <- a })
	}()
	select {
	case a := <-addrs:
		return "http://" + a.String(), done
	case err := <-done:
		t.Fatalf("run returned before listening: %v", err)
	}
	return "", nil
}

// waitReady polls /v1/readyz until it answers 200; it fails the test if
// run returns first.
func waitReady(t *testing.T, base string, done chan error) {
	t.Helper()
	for {
		select {
		case err := <-done:
			t.Fatalf("run returned before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(base + RouteReadyz)
		require.NoError(t, err)
		_ = readBody(t, resp)
		if resp.StatusCode == http.StatusOK {
			return
		}
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		time.Sleep(5 * time.Millisecond)
	}
}

func serverOptions() Options {
	o := testOptions()
	o.Host, o.Port = "127.0.0.1", 0
	o.Model = "kronos-fake" // newFakeBackend's name
	o.MaxBodyBytes = 4096
	o.ShutdownTimeout = 100 * time.Millisecond
	return o
}

func readBody(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// TestRunServesAndDrains runs the real server on a loopback port: healthz,
// a body over the limit (413, rejected by fasthttp before any handler, in
// the same envelope and access log), and a shutdown while a forecast is in
// flight: the forecast is cancelled when the grace period ends, answered
// 503, and the backend is closed only after it returned.
func TestRunServesAndDrains(t *testing.T) {
	fb := newFakeBackend()
	fb.block = true
	fb.entered = make(chan struct{}, 1)
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, done := serve(t, ctx, serverOptions(), &logs, func(Options) (infer.Backend, error) { return fb, nil })

	resp, err := http.Get(base + RouteHealthz)
	require.NoError(t, err)
	body := readBody(t, resp)
	require.Equal(t, 200, resp.StatusCode, "%s", body)
	var h healthResponse
	require.NoError(t, json.Unmarshal(body, &h))
	require.Equal(t, healthResponse{Status: "ok", Model: "kronos-fake", ModelVersion: "fake/Kronos-fake@0000",
		TokenizerVersion: "fake/Tokenizer@0000", Checkpoint: "fake/Kronos-fake", RepositoryVersion: "1",
		Backend: "fake", Device: "cpu"}, h)

	req, err := http.NewRequest(http.MethodPost, base+RoutePredictSingle, bytes.NewReader(make([]byte, 5000)))
	require.NoError(t, err)
	req.Header.Set(HeaderRequestID, "too-big-1")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body = readBody(t, resp)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s", body)
	e := envelope(t, body)
	require.Equal(t, infer.KindTooLarge, e.Kind)
	require.Contains(t, e.Message, "4096 bytes")
	require.Equal(t, "too-big-1", e.RequestID)
	require.Equal(t, "too-big-1", resp.Header.Get(HeaderRequestID))

	type result struct {
		status int
		header http.Header
		body   []byte
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.Post(base+RoutePredictSingle, "application/json", bytes.NewReader(mustJSON(t, baseRequest(4, 2))))
		if err != nil {
			inflight <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- result{resp.StatusCode, resp.Header, b, err}
	}()
	<-fb.entered
	cancel()
	r := <-inflight
	require.NoError(t, r.err)
	require.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.body)
	require.Equal(t, infer.KindUnavailable, envelope(t, r.body).Kind)
	require.Equal(t, "5", r.header.Get("Retry-After"))
	require.NoError(t, <-done)
	require.True(t, fb.closed.Load(), "backend closed")
	require.False(t, fb.closedInCall.Load(), "backend closed while a forecast was running")

	_, err = http.Get(base + RouteHealthz)
	require.Error(t, err, "the listener is closed")

	for _, msg := range []string{"configuration", "loading models", "model loaded", "listening", "shutting down", "server stopped", "backend closed"} {
		require.Len(t, logs.find(t, msg), 1, "log %q", msg)
	}
	var outcomes []string
	for _, l := range logs.find(t, "request") {
		if l["route"] == RouteReadyz {
			continue // waitReady's polls
		}
		for _, k := range []string{"request_id", "method", "route", "status", "latency_ms", "outcome", "bytes_in", "bytes_out"} {
			require.Contains(t, l, k)
		}
		outcomes = append(outcomes, l["outcome"].(string))
		if l["outcome"] == "too_large" {
			require.Equal(t, "too-big-1", l["request_id"])
			require.Equal(t, float64(413), l["status"])
		}
	}
	require.ElementsMatch(t, []string{"ok", "too_large", "unavailable"}, outcomes)
}

// TestRunStartup covers the ways start can fail or stop.
func TestRunStartup(t *testing.T) {
	t.Run("invalid options", func(t *testing.T) {
		o := serverOptions()
		o.MaxCandles = 0
		err := run(context.Background(), o, nil, func(Options) (infer.Backend, error) { return newFakeBackend(), nil }, nil)
		require.ErrorContains(t, err, "KRONOS_MAX_CANDLES")
	})
	t.Run("backend fails to open", func(t *testing.T) {
		err := run(context.Background(), serverOptions(), nil, func(Options) (infer.Backend, error) {
			return nil, infer.Errorf(infer.KindNotFound, "no such model")
		}, nil)
		require.ErrorContains(t, err, "no such model")
		require.True(t, errors.Is(err, infer.ErrNotFound))
	})
	t.Run("startup timeout closes the late backend", func(t *testing.T) {
		o := serverOptions()
		o.StartupTimeout = 10 * time.Millisecond
		release := make(chan struct{})
		fb := newFakeBackend()
		err := run(context.Background(), o, nil, func(Options) (infer.Backend, error) {
			<-release
			return fb, nil
		}, nil)
		require.ErrorContains(t, err, "KRONOS_STARTUP_TIMEOUT")
		close(release)
		require.Eventually(t, fb.closed.Load, 10*time.Second, time.Millisecond)
	})
	t.Run("stopped while loading", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		defer close(release)
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, serverOptions(), nil, func(Options) (infer.Backend, error) {
				<-release
				return newFakeBackend(), nil
			}, nil)
		}()
		cancel()
		require.NoError(t, <-done)
	})
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		o := serverOptions()
		o.Port = ln.Addr().(*net.TCPAddr).Port
		var opened atomic.Bool
		err = run(context.Background(), o, nil, func(Options) (infer.Backend, error) {
			opened.Store(true)
			return newFakeBackend(), nil
		}, nil)
		require.ErrorContains(t, err, "listening")
		require.False(t, opened.Load(), "the server listens before it loads the models")
	})
}

// TestRunEmbedded starts the server with the real embedded backend on the
// committed model_repository.
func TestRunEmbedded(t *testing.T) {
	o := serverOptions()
	o.ORTLib = testLib(t)
	o.ModelRepository = "../model_repository"
	o.Model = "kronos-nano"
	o.IntraOpThreads = 1
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, done := serve(t, ctx, o, &logs, openEmbedded)
	resp, err := http.Get(base + RouteHealthz)
	require.NoError(t, err)
	var h healthResponse
	require.NoError(t, json.Unmarshal(readBody(t, resp), &h))
	require.Equal(t, "kronos-nano", h.Model)
	require.Equal(t, "embedded", h.Backend)
	loaded := logs.find(t, "model loaded")
	require.Len(t, loaded, 1)
	require.Equal(t, h.ModelVersion, loaded[0]["model_version"])
	cancel()
	require.NoError(t, <-done)
}
