package onnxlocal

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// TestRunModes runs the same case with the default options (denormals
// flushed), with IEEE denormals kept, with spinning worker threads and with
// one thread: every mode must match the reference, and the flushing mode
// must agree with the IEEE one to well within the tolerance (the only
// denormals the graphs produce are masked attention weights, 0 in the
// reference).
func TestRunModes(t *testing.T) {
	cc := loadCase(t, nanoConf, "nano_slide")
	var base [][]float32
	for _, m := range []struct {
		name string
		opt  Options
	}{
		{"keep-denormals", Options{KeepDenormals: true, IntraOpThreads: 2}},
		{"default", Options{IntraOpThreads: 2}},
		{"spinning", Options{Spinning: true, IntraOpThreads: 2}},
		{"one-thread", Options{IntraOpThreads: 1}},
	} {
		t.Run(m.name, func(t *testing.T) {
			b := openConf(t, nanoConf, m.opt)
			s1, s2, _, err := runCase(context.Background(), b, cc)
			if err != nil {
				t.Fatal(err)
			}
			var all [][]float32
			for i, st := range cc.ModelBatch.Steps {
				checkClose(t, fmt.Sprintf("steps[%d].s1_logits", i), s1[i], flat2(st.S1Logits), 1e-4)
				checkClose(t, fmt.Sprintf("steps[%d].s2_logits", i), s2[i], flat2(st.S2Logits), 1e-4)
				all = append(all, s1[i], s2[i])
			}
			if base == nil {
				base = all
				return
			}
			for i := range all {
				checkClose(t, fmt.Sprintf("output %d against keep-denormals", i), all[i], base[i], 1e-6)
			}
		})
	}
}

// TestMXCSRRestored checks that neither Open (whose first ORT session sets
// the creating thread's flush-to-zero mode) nor a graph run (which sets it
// for the call) leaves the calling thread's SSE control register changed,
// so Go code keeps IEEE arithmetic.
func TestMXCSRRestored(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := getMXCSR()
	b := openConf(t, tinyConf, Options{})
	if got := getMXCSR(); got&^mxcsrStatusFlags != before&^mxcsrStatusFlags {
		t.Fatalf("MXCSR after Open = %#x, before %#x", got, before)
	}
	cc := loadCase(t, tinyConf, "short")
	if _, _, _, err := runCase(context.Background(), b, cc); err != nil {
		t.Fatal(err)
	}
	if got := getMXCSR(); got&^mxcsrStatusFlags != before&^mxcsrStatusFlags {
		t.Fatalf("MXCSR after running graphs = %#x, before %#x", got, before)
	}
}

// mxcsrStatusFlags are MXCSR's sticky exception flags (bits 0-5), which
// any float arithmetic may set; the tests compare the control bits only.
const mxcsrStatusFlags = 0x3f

// TestPutKeys checks the tiled transpose against the definition, with a
// length that is not a multiple of the tile and entries beyond it left
// alone.
func TestPutKeys(t *testing.T) {
	const heads, size, tt, c, n = 3, 5, keyTile + 30, keyTile + 40, keyTile + 27
	src := make([]float32, heads*tt*size)
	for i := range src {
		src[i] = float32(i + 1)
	}
	dst := make([]float32, heads*size*c)
	for i := range dst {
		dst[i] = -1
	}
	putKeys(dst, src, heads, size, tt, c, n)
	for h := range heads {
		for e := range size {
			for j := range c {
				want := float32(-1)
				if j < n {
					want = src[(h*tt+j)*size+e]
				}
				if got := dst[(h*size+e)*c+j]; got != want {
					t.Fatalf("head %d feature %d position %d: %v, want %v", h, e, j, got, want)
				}
			}
		}
	}
}
