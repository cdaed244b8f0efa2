//go:build integration

package triton

// Checks against a real Triton (scripts/triton-check.sh; docs/triton.md):
//
//	KRONOS_TRITON_URL=host:8001 go test -tags integration -run TestRealTriton -v ./triton/
//
// Environment:
//
//	KRONOS_TRITON_URL              Triton gRPC address (required; tests skip without it)
//	KRONOS_MODEL                   Kronos model name (default kronos-nano)
//	KRONOS_TRITON_TOLERANT=1       log token-id mismatches instead of failing (FP16 TensorRT)
//	KRONOS_TRITON_LOAD_REQUESTS    forecasts in the load check (default 64)
//	KRONOS_TRITON_LOAD_CONCURRENCY concurrent forecasts (default 8)
//	KRONOS_TRITON_METRICS_URL      Triton metrics endpoint, e.g. http://host:8002/metrics
//	                               (reports the average dynamic batch size of the window model)
//	KRONOS_TRITON_HOTSWAP=1        also reload the models while forecasts run (explicit mode)

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/triton/internal/kronostest"
)

func realTriton(t *testing.T) *Backend {
	t.Helper()
	url := os.Getenv(EnvURL)
	if url == "" {
		t.Skip("KRONOS_TRITON_URL is not set")
	}
	model := os.Getenv(EnvModel)
	if model == "" {
		model = "kronos-nano"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := New(ctx, Options{URL: url, Model: model, Logger: quiet, InferTimeout: time.Minute})
	if err != nil {
		t.Fatalf("connect to Triton at %s: %v", url, err)
	}
	t.Cleanup(func() { b.Close() })
	t.Logf("Triton %s: %+v", url, b.Info())
	return b
}

// TestRealTritonParity runs the carried kronos-nano conformance cases
// through a real Triton serving model_repository and compares every
// generated token id with the reference.
func TestRealTritonParity(t *testing.T) {
	b := realTriton(t)
	if b.Info().Name != kronostest.Nano.Name {
		t.Skipf("parity cases are for kronos-nano, Triton serves %s", b.Info().Name)
	}
	tolerant := os.Getenv("KRONOS_TRITON_TOLERANT") == "1"
	for _, name := range []string{"nano_short", "nano_slide"} {
		t.Run(name, func(t *testing.T) {
			ref := loadCase(t, kronostest.Nano, name)
			tr := &forecast.Trace{}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if _, err := (&forecast.Forecaster{Backend: b, Trace: tr}).Predict(ctx, ref.jobs(t)); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i, st := range tr.Steps {
				if !slices.Equal(st.S1, ref.ModelBatch.Steps[i].S1) || !slices.Equal(st.S2, ref.ModelBatch.Steps[i].S2) {
					if bad == 0 {
						t.Logf("first differing step %d: s1 %v s2 %v, reference s1 %v s2 %v", i, st.S1, st.S2, ref.ModelBatch.Steps[i].S1, ref.ModelBatch.Steps[i].S2)
					}
					bad++
				}
			}
			if bad > 0 && !tolerant {
				t.Fatalf("%d of %d steps differ from the reference (set KRONOS_TRITON_TOLERANT=1 for FP16 engines)", bad, len(tr.Steps))
			}
			t.Logf("%d of %d steps differ; bytes so far %+v", bad, len(tr.Steps), b.Stats())
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestRealTritonLoad sends concurrent forecasts of random lengths and
// reports latency percentiles, traffic, error kinds and (with
// KRONOS_TRITON_METRICS_URL) the average dynamic batch of the window
// model. Any error other than KindOverloaded fails the test.
func TestRealTritonLoad(t *testing.T) {
	b := realTriton(t)
	n, conc := envInt("KRONOS_TRITON_LOAD_REQUESTS", 64), envInt("KRONOS_TRITON_LOAD_CONCURRENCY", 8)
	maxCtx := b.Info().MaxContext
	before := scrapeBatch(t)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		kinds     = map[infer.Kind]int{}
		wg        sync.WaitGroup
		jobs      = make(chan int)
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	hotswap := os.Getenv("KRONOS_TRITON_HOTSWAP") == "1"
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			f := &forecast.Forecaster{Backend: b}
			for i := range jobs {
				job := syntheticJob(rng, 32+rng.IntN(maxCtx), 8+rng.IntN(24), i)
				start := time.Now()
				_, err := f.Predict(ctx, []forecast.Job{job})
				mu.Lock()
				latencies = append(latencies, time.Since(start))
				kinds[infer.KindOf(err)]++
				mu.Unlock()
				if err != nil && infer.KindOf(err) != infer.KindOverloaded {
					t.Errorf("forecast %d: %v", i, err)
				}
			}
		}()
	}
	for i := range n {
		if hotswap && i == n/2 {
			go func() {
				for _, m := range b.Models() {
					if err := b.Load(ctx, m, LoadOptions{}); err != nil {
						t.Errorf("reload %s under load: %v", m, err)
					}
				}
			}()
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	st := b.Stats()
	t.Logf("%d forecasts, concurrency %d: p50 %v p90 %v p99 %v max %v; outcomes %v", n, conc, pct(.5), pct(.9), pct(.99), latencies[len(latencies)-1], kinds)
	t.Logf("traffic: %d calls, %.1f MB sent, %.1f MB received (%.0f KB sent per forecast)",
		st.Calls, float64(st.BytesSent)/1e6, float64(st.BytesReceived)/1e6, float64(st.BytesSent)/1e3/float64(n))
	if after := scrapeBatch(t); before != nil && after != nil {
		count, execs := after[0]-before[0], after[1]-before[1]
		if execs > 0 {
			t.Logf("window model: %.0f inferences in %.0f executions, average dynamic batch %.2f", count, execs, count/execs)
		}
	}
}

// syntheticJob is a forecast of l candles and p steps with a random walk.
func syntheticJob(rng *rand.Rand, l, p, seed int) forecast.Job {
	start := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	j := forecast.Job{Params: forecast.DefaultParams()}
	j.Params.Seed = uint64(seed)
	price := 100.0
	for i := range l {
		price *= 1 + 0.002*rng.NormFloat64()
		j.X = append(j.X, float32(price), float32(price*1.001), float32(price*0.999), float32(price), float32(1000+rng.IntN(500)), float32(price*1000))
		j.XTime = append(j.XTime, start.Add(time.Duration(i)*time.Minute))
	}
	for i := range p {
		j.YTime = append(j.YTime, start.Add(time.Duration(l+i)*time.Minute))
	}
	return j
}

// scrapeBatch returns nv_inference_count and nv_inference_exec_count of
// the window model from Triton's metrics endpoint (nil without one).
func scrapeBatch(t *testing.T) []float64 {
	url := os.Getenv("KRONOS_TRITON_METRICS_URL")
	if url == "" {
		return nil
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Logf("metrics: %v", err)
		return nil
	}
	defer resp.Body.Close()
	model := fmt.Sprintf(`model="%s-window"`, os.Getenv(EnvModel))
	if os.Getenv(EnvModel) == "" {
		model = `model="kronos-nano-window"`
	}
	out := []float64{0, 0}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, model) {
			continue
		}
		fields := strings.Fields(line)
		v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
		switch {
		case strings.HasPrefix(line, "nv_inference_count{"):
			out[0] += v
		case strings.HasPrefix(line, "nv_inference_exec_count{"):
			out[1] += v
		}
	}
	return out
}
