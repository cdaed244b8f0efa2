package onnxlocal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/export"
	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Benchmarks at Kronos-small size (random weights, max_context 512):
//
//	go test ./internal/onnxlocal -run '^$' -bench . -benchtime 1x -count 3
//
// The exported graphs are cached under os.TempDir() keyed by preset, seed
// and exporter version, so repeated runs do not re-export.

const (
	benchPreset = "small"
	benchSeed   = 1
	benchModel  = "kronos-small"
)

// exporterFingerprint identifies the exporter's graphs: a hash of the five
// graphs of a random "tiny" model (milliseconds to build). A changed
// exporter changes it even when ProducerVersion was not bumped.
func exporterFingerprint(b *testing.B) string {
	b.Helper()
	tok, pred, _, err := checkpoint.RandomPair("tiny", benchSeed)
	if err != nil {
		b.Fatal(err)
	}
	m, err := export.NewModel(tok, pred)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	for _, r := range graphs.Roles {
		g, err := m.ONNX(r)
		if err != nil {
			b.Fatal(err)
		}
		h.Write(g)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// benchRepo returns a repository with the random-weight benchmark model,
// exporting it on first use. It is cached under os.TempDir() keyed by
// preset, seed and exporter fingerprint.
func benchRepo(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("onnxlocal-bench-%s-seed%d-%s", benchPreset, benchSeed, exporterFingerprint(b)))
	if _, err := resolveVersion(dir, benchModel, "1"); err == nil {
		return dir
	}
	tok, pred, maxContext, err := checkpoint.RandomPair(benchPreset, benchSeed)
	if err != nil {
		b.Fatal(err)
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "onnxlocal-bench-export-")
	if err != nil {
		b.Fatal(err)
	}
	if err := exportPair(tmp, benchModel, "1", tok, pred, maxContext); err != nil {
		os.RemoveAll(tmp)
		b.Fatal(err)
	}
	os.RemoveAll(dir) // an incomplete earlier attempt
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		b.Fatal(err)
	}
	return dir
}

// cpuTime is the process's user+system CPU time (all threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports CPU milliseconds per operation next to ns/op: on a
// shared machine wall time includes waiting for a CPU, CPU time does not.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
	total time.Duration
}

func startCPU(b *testing.B) *cpuMeter { return &cpuMeter{b: b, start: cpuTime()} }

// pause and resume exclude a section, like b.StopTimer / b.StartTimer.
func (m *cpuMeter) pause()  { m.total += cpuTime() - m.start }
func (m *cpuMeter) resume() { m.start = cpuTime() }

func (m *cpuMeter) stop() {
	m.pause()
	m.b.ReportMetric(float64(m.total)/float64(time.Millisecond)/float64(m.b.N), "cpu-ms/op")
}

func openBench(b *testing.B, opt Options) *Backend {
	b.Helper()
	opt.RepoDir = benchRepo(b)
	opt.Model = benchModel
	opt.LibPath = testLib(b)
	be, err := Open(opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	return be
}

// benchInput is a synthetic forecast: normalised candles and the stamps of
// L context and P future positions (5-minute bars).
type benchInput struct {
	x      []float32
	stamps []int64 // (L+P)*5
	l, p   int
}

func newBenchInput(l, p int) benchInput {
	r := rand.New(rand.NewPCG(7, 11))
	in := benchInput{l: l, p: p, x: make([]float32, l*infer.CandleWidth)}
	for i := range in.x {
		in.x[i] = float32(r.NormFloat64())
	}
	for i := range l + p {
		m := i * 5
		in.stamps = append(in.stamps, int64(m%60), int64(m/60%24), int64(m/1440%7), int64(1+m/1440%28), 6)
	}
	return in
}

func argmax(v []float32) int64 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int64(best)
}

// greedyForecast runs one forecast end to end on the backend: encode the
// context, the greedy autoregressive loop (sliding past MaxContext), and the
// final decode. It returns the session's counters.
func greedyForecast(ctx context.Context, be *Backend, in benchInput) (SessionStats, error) {
	info := be.Info()
	dq := info.S1Bits + info.S2Bits
	q, err := be.Encode(ctx, in.x, 1, in.l)
	if err != nil {
		return SessionStats{}, err
	}
	s1 := make([]int64, 0, in.l+in.p)
	s2 := make([]int64, 0, in.l+in.p)
	for i := range in.l {
		var a, c int64
		for j := range info.S1Bits {
			if q[i*dq+j] > 0 {
				a |= 1 << j
			}
			if q[i*dq+info.S1Bits+j] > 0 {
				c |= 1 << j
			}
		}
		s1, s2 = append(s1, a), append(s2, c)
	}
	sess, err := be.OpenSession(ctx, 1)
	if err != nil {
		return SessionStats{}, err
	}
	defer sess.Close()
	ws := make([]infer.Window, 1)
	for range in.p {
		n := len(s1)
		start := max(0, n-info.MaxContext)
		ws[0] = infer.Window{Start: start, S1: s1[start:n], S2: s2[start:n], Stamps: in.stamps[start*infer.StampWidth : n*infer.StampWidth]}
		l1, err := sess.S1Logits(ctx, ws)
		if err != nil {
			return SessionStats{}, err
		}
		a := argmax(l1)
		l2, err := sess.S2Logits(ctx, []int64{a})
		if err != nil {
			return SessionStats{}, err
		}
		s1, s2 = append(s1, a), append(s2, argmax(l2))
	}
	w := min(len(s1), info.MaxContext)
	if _, err := be.Decode(ctx, s1[len(s1)-w:], s2[len(s2)-w:], 1, w); err != nil {
		return SessionStats{}, err
	}
	return sess.Stats(), nil
}

// BenchmarkGreedy is one forecast end to end (encode, 120 greedy steps,
// decode) at Kronos-small size, with the KV cache and recomputing every
// window. ctx=400 slides for the last 8 steps.
func BenchmarkGreedy(b *testing.B) {
	for _, l := range []int{392, 400} {
		for _, noKV := range []bool{false, true} {
			b.Run(fmt.Sprintf("ctx=%d/kv=%v", l, !noKV), func(b *testing.B) {
				be := openBench(b, Options{DisableKVCache: noKV})
				in := newBenchInput(l, 120)
				ctx := context.Background()
				var st SessionStats
				b.ResetTimer()
				cpu := startCPU(b)
				for range b.N {
					var err error
					if st, err = greedyForecast(ctx, be, in); err != nil {
						b.Fatal(err)
					}
				}
				cpu.stop()
				b.ReportMetric(float64(st.PrefillCalls), "prefills/op")
				b.ReportMetric(float64(st.StepCalls), "steps/op")
			})
		}
	}
}

// benchWindow is a synthetic window of n tokens.
func benchWindow(n int) infer.Window {
	in := newBenchInput(n, 0)
	w := infer.Window{Stamps: in.stamps}
	for i := range n {
		w.S1 = append(w.S1, int64(i*37%1024))
		w.S2 = append(w.S2, int64(i*91%1024))
	}
	return w
}

// BenchmarkPrefill is one S1Logits call that prefills a window of 400 or
// 512 tokens (the cost of every sliding step).
func BenchmarkPrefill(b *testing.B) {
	for _, n := range []int{400, 512} {
		b.Run(fmt.Sprintf("T=%d", n), func(b *testing.B) {
			be := openBench(b, Options{DisableKVCache: true})
			s, err := be.OpenSession(context.Background(), 1)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ws := []infer.Window{benchWindow(n)}
			b.ResetTimer()
			cpu := startCPU(b)
			for range b.N {
				if _, err := s.S1Logits(context.Background(), ws); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop()
		})
	}
}

// BenchmarkStep is one incremental S1Logits call plus its S2Logits call at
// positions 400..511 of a 512-entry cache, with one or two intra-op
// threads, with and without spinning worker threads.
func BenchmarkStep(b *testing.B) {
	for _, threads := range []int{1, 2} {
		for _, spin := range []bool{false, true} {
			b.Run(fmt.Sprintf("threads=%d/spin=%v", threads, spin), func(b *testing.B) {
				benchStep(b, Options{IntraOpThreads: threads, Spinning: spin})
			})
		}
	}
}

func benchStep(b *testing.B, opt Options) {
	be := openBench(b, opt)
	s, err := be.OpenSession(context.Background(), 1)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	full := benchWindow(512)
	win := func(n int) []infer.Window {
		return []infer.Window{{S1: full.S1[:n], S2: full.S2[:n], Stamps: full.Stamps[:n*infer.StampWidth]}}
	}
	n := 512
	b.ResetTimer()
	cpu := startCPU(b)
	for range b.N {
		if n == 512 {
			// Back to 400 tokens with an untimed prefill.
			b.StopTimer()
			cpu.pause()
			if _, err := s.S1Logits(ctx, win(400)); err != nil {
				b.Fatal(err)
			}
			n = 400
			cpu.resume()
			b.StartTimer()
		}
		n++
		if _, err := s.S1Logits(ctx, win(n)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.S2Logits(ctx, []int64{3}); err != nil {
			b.Fatal(err)
		}
	}
	cpu.stop()
	if st := s.Stats(); st.StepCalls != b.N {
		b.Fatalf("%d step calls for %d iterations: the cache was not used", st.StepCalls, b.N)
	}
}
