package preprocess

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// benchRows are the request sizes of the benchmarks: the gateway's typical
// 400-candle request (target: p99 < 1 ms of overhead) and the schema maximum.
var benchRows = []int{400, 2048}

// loadRegressionInput reads the first n candles and timestamps of
// testdata/data/regression_input.csv.
func loadRegressionInput(b *testing.B, n int) ([]Candle, []time.Time) {
	b.Helper()
	f, err := os.Open("../testdata/data/regression_input.csv")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		b.Fatal(err)
	}
	recs = recs[1:] // header
	if len(recs) < n {
		b.Fatalf("regression_input.csv has %d rows, want %d", len(recs), n)
	}
	c := make([]Candle, n)
	ts := make([]time.Time, n)
	for i, r := range recs[:n] {
		var v [6]float64
		for j := range v {
			if v[j], err = strconv.ParseFloat(r[1+j], 64); err != nil {
				b.Fatal(err)
			}
		}
		c[i] = Candle{Open: v[0], High: v[1], Low: v[2], Close: v[3], Volume: &v[4], Amount: &v[5]}
		if ts[i], err = time.Parse(time.DateTime, r[0]); err != nil {
			b.Fatal(err)
		}
	}
	return c, ts
}

// BenchmarkPrepare measures the numeric preparation of one series:
// Fill + Stats + Normalize.
func BenchmarkPrepare(b *testing.B) {
	for _, n := range benchRows {
		c, _ := loadRegressionInput(b, n)
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				x := Fill(c, true, true)
				mean, std := Stats(x, n)
				_ = Normalize(x, n, mean, std, DefaultClip)
			}
		})
	}
}

// BenchmarkTimeFeatures measures the time features of n timestamps.
func BenchmarkTimeFeatures(b *testing.B) {
	for _, n := range benchRows {
		_, ts := loadRegressionInput(b, n)
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = TimeFeatures(ts)
			}
		})
	}
}

// BenchmarkRequest measures everything this package does for one request:
// ValidateCandles, Fill, Stats, Normalize and TimeFeatures.
func BenchmarkRequest(b *testing.B) {
	for _, n := range benchRows {
		c, ts := loadRegressionInput(b, n)
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ValidateCandles(c, "candles"); err != nil {
					b.Fatal(err)
				}
				x := Fill(c, true, true)
				mean, std := Stats(x, n)
				_ = Normalize(x, n, mean, std, DefaultClip)
				_ = TimeFeatures(ts)
			}
		})
	}
}
