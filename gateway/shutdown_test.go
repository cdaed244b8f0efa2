package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestGracefulShutdown builds cmd/kronos-gateway, starts it on a free
// loopback port with the committed kronos-nano, sends concurrent forecasts
// and sends SIGTERM while they are in flight. The contract (gateway/doc.go,
// "Shutdown"):
//
//   - every request the gateway had admitted when the signal came (running
//     or queued, as kronos_concurrent_requests + kronos_queue_depth show) is
//     answered 200;
//   - once readiness has flipped (GET /v1/readyz answers 503, or the
//     connection is refused because the listener is already closed), every
//     new request gets 503 or a refused connection, never a forecast;
//   - the process exits 0 and closes the backend after the last response.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	lib := testLib(t)
	bin := buildGateway(t)
	repo, err := filepath.Abs(filepath.Join(moduleRoot, "model_repository"))
	require.NoError(t, err)

	cmd := exec.Command(bin)
	cmd.Env = append(withoutKronosEnv(os.Environ()),
		"KRONOS_HOST=127.0.0.1", "KRONOS_PORT=0", "KRONOS_MODEL_REPOSITORY="+repo, "KRONOS_ORT_LIB="+lib,
		"KRONOS_INTRA_OP_THREADS=1", "KRONOS_MAX_CONCURRENCY=2", "KRONOS_QUEUE_SIZE=16",
		"KRONOS_SHUTDOWN_TIMEOUT=120s", "KRONOS_REQUEST_TIMEOUT=120s", "KRONOS_INFERENCE_TIMEOUT=120s")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	var logs syncBuffer
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logs.Write(append(append([]byte(nil), line...), '\n'))
			var m map[string]any
			if json.Unmarshal(line, &m) == nil && m["msg"] == "listening" {
				addr <- m["addr"].(string)
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-exited:
		t.Fatalf("the gateway exited before listening: %v\n%s", err, logs.String())
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	require.Eventually(t, func() bool {
		resp, err := client.Get(base + "/v1/readyz")
		if err != nil {
			return false
		}
		readBody(t, resp)
		return resp.StatusCode == 200
	}, testWait, 10*time.Millisecond, "the model loads")

	// The load: forecasts long enough (the 256-candle window slides at
	// every step) that several are still queued or running when the
	// signal comes.
	const n = 6
	body := mustJSON(t, map[string]any(series(300, 24)))
	type result struct {
		status int
		err    error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			resp, err := client.Post(base+RoutePredictSingle, "application/json", bytes.NewReader(body))
			if err != nil {
				results <- result{err: err}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- result{status: resp.StatusCode}
		}()
	}
	// Wait until the gateway holds every request that has not been
	// answered yet (admitted: running or queued).
	var inflight int
	require.Eventually(t, func() bool {
		running, queued := gatewayLoad(t, client, base)
		inflight = running + queued
		return inflight+len(results) == n
	}, testWait, time.Millisecond, "all requests admitted")
	require.Positive(t, inflight, "the signal must come mid-load")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))

	// Readiness flips first; from then on nothing new is served.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	require.Eventually(t, func() bool {
		resp, err := fresh.Get(base + "/v1/readyz")
		if err != nil {
			return true // the listener is closed
		}
		readBody(t, resp)
		return resp.StatusCode == http.StatusServiceUnavailable
	}, testWait, time.Millisecond, "readiness flips to 503")
	var refused, unavailable int
	for range 3 {
		resp, err := fresh.Post(base+RoutePredictSingle, "application/json", bytes.NewReader(body))
		if err != nil {
			require.True(t, errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET),
				"a new request fails only by a refused connection: %v", err)
			refused++
			continue
		}
		b := readBody(t, resp)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", b)
		require.Equal(t, "5", resp.Header.Get("Retry-After"))
		unavailable++
	}
	require.Equal(t, 3, refused+unavailable)

	for i := range n {
		r := <-results
		require.NoError(t, r.err, "request %d was dropped", i)
		require.Equal(t, http.StatusOK, r.status, "request %d", i)
	}
	select {
	case err := <-exited:
		require.NoError(t, err, "exit status\n%s", logs.String())
	case <-time.After(testWait):
		t.Fatalf("the gateway did not exit\n%s", logs.String())
	}

	// In the log: the drain began before the last forecasts were answered,
	// and the backend was closed after every one of them.
	var order []string
	for _, l := range logs.lines(t) {
		switch {
		case l["msg"] == "shutting down", l["msg"] == "backend closed":
			order = append(order, l["msg"].(string))
		case l["msg"] == "request" && l["route"] == RoutePredictSingle && l["status"] == 200.0:
			order = append(order, "200")
		}
	}
	require.Equal(t, "backend closed", order[len(order)-1], "%v", order)
	require.Equal(t, n, strings.Count(strings.Join(order, " "), "200"))
	drain := strings.Index(strings.Join(order, " "), "shutting down")
	require.Contains(t, strings.Join(order, " ")[drain:], "200", "forecasts answered during the drain: %v", order)
	t.Logf("in flight at the signal: %d; after it: %d refused, %d answered 503", inflight, refused, unavailable)
}

// buildGateway builds cmd/kronos-gateway into a temporary folder.
func buildGateway(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "kronos-gateway")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/kronos-gateway")
	build.Dir = moduleRoot
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// withoutKronosEnv drops KRONOS_* variables from environ.
func withoutKronosEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "KRONOS_") {
			out = append(out, kv)
		}
	}
	return out
}

// gatewayLoad reads kronos_concurrent_requests and kronos_queue_depth from
// the gateway's /v1/metrics.
func gatewayLoad(t *testing.T, c *http.Client, base string) (running, queued int) {
	t.Helper()
	resp, err := c.Get(base + RouteMetrics)
	require.NoError(t, err)
	for _, line := range strings.Split(string(readBody(t, resp)), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case "kronos_concurrent_requests":
			running = int(v)
		case "kronos_queue_depth":
			queued = int(v)
		}
	}
	return running, queued
}
