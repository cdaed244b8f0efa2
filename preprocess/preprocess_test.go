package preprocess

import (
	"math"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // DST tests must not depend on the host's zoneinfo
)

func f64(v float64) *float64 { return &v }

func TestFill(t *testing.T) {
	tests := []struct {
		name       string
		in         []Candle
		hasV, hasA bool
		want       []float32
	}{
		{
			name: "all columns",
			in:   []Candle{{Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: f64(10), Amount: f64(12)}},
			hasV: true, hasA: true,
			want: []float32{1, 2, 0.5, 1.5, 10, 12},
		},
		{
			name: "amount derived from volume and the OHLC mean",
			in: []Candle{
				{Open: 1, High: 2, Low: 1, Close: 2, Volume: f64(10)},
				{Open: 4, High: 4, Low: 4, Close: 4, Volume: f64(0)},
			},
			hasV: true,
			want: []float32{1, 2, 1, 2, 10, 15, 4, 4, 4, 4, 0, 0},
		},
		{
			name: "no volume zeroes volume and a given amount",
			in:   []Candle{{Open: 1, High: 1, Low: 1, Close: 1, Amount: f64(99)}},
			hasA: true,
			want: []float32{1, 1, 1, 1, 0, 0},
		},
		{
			name: "OHLC only",
			in:   []Candle{{Open: 3, High: 4, Low: 2, Close: 3}},
			want: []float32{3, 4, 2, 3, 0, 0},
		},
		{
			name: "float64 rounded to float32",
			in:   []Candle{{Open: 10.1, High: 10.2, Low: 10, Close: 10.1, Volume: f64(1.0 / 3), Amount: f64(0.1)}},
			hasV: true, hasA: true,
			want: []float32{10.1, 10.2, 10, 10.1, 1.0 / 3, 0.1},
		},
		{
			// 10.1*3 = 30.3 in float64; the product is rounded once, to float32.
			name: "derived amount rounded once",
			in:   []Candle{{Open: 10.1, High: 10.1, Low: 10.1, Close: 10.1, Volume: f64(3)}},
			hasV: true,
			want: []float32{10.1, 10.1, 10.1, 10.1, 3, float32(3 * 10.1)},
		},
		{name: "empty", want: []float32{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fill(tt.in, tt.hasV, tt.hasA)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Fill = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPairwiseSum(t *testing.T) {
	big := float32(1 << 24) // above 2^24, float32 steps are 2: x + 1 rounds to even
	ones := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = 1
		}
		return s
	}
	tests := []struct {
		name string
		in   []float32
		want float32
	}{
		{"empty", nil, 0},
		{"running sum below 8", []float32{1, 2, 3, 4, 5, 6, 7}, 28},
		// n = 9: ((2^24+1)+(1+1)) + ((1+1)+(1+1)) = 2^24+6, then +1 ties to
		// 2^24+8. A running sum loses every 1 and gives 2^24.
		{"eight accumulators then the rest", append([]float32{big}, ones(8)...), big + 8},
		// n = 7: a running sum loses each 1.
		{"running sum loses ones", append([]float32{big}, ones(6)...), big},
		// n = 16: r0 = 2^24+1 -> 2^24 (tie to even), r1..r7 = 2;
		// ((2^24+2)+(2+2)) + ((2+2)+(2+2)) = 2^24+14.
		{"two blocks", append(append([]float32{big}, ones(7)...), ones(8)...), big + 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pairwiseSum(tt.in); got != tt.want {
				t.Errorf("pairwiseSum = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStats(t *testing.T) {
	tests := []struct {
		name      string
		rows      [][6]float32
		wantMean  [6]float32
		wantStd   [6]float32
		checkNaNs bool
	}{
		{
			name:     "constant and simple columns",
			rows:     [][6]float32{{10, 1, 0, -2, 5, 1}, {10, 2, 0, 2, 5, 3}, {10, 3, 0, -2, 5, 1}, {10, 4, 0, 2, 5, 3}},
			wantMean: [6]float32{10, 2.5, 0, 0, 5, 2},
			wantStd:  [6]float32{0, float32(math.Sqrt(1.25)), 0, 2, 0, 1},
		},
		{
			name:     "one row",
			rows:     [][6]float32{{1, 2, 3, 4, 5, 6}},
			wantMean: [6]float32{1, 2, 3, 4, 5, 6},
		},
		{name: "no rows", checkNaNs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x []float32
			for _, r := range tt.rows {
				x = append(x, r[:]...)
			}
			mean, std := Stats(x, len(tt.rows))
			if tt.checkNaNs {
				for j := range 6 {
					if !math.IsNaN(float64(mean[j])) || !math.IsNaN(float64(std[j])) {
						t.Errorf("column %d: mean %v std %v, want NaN (as NumPy)", j, mean[j], std[j])
					}
				}
				return
			}
			if mean != tt.wantMean || std != tt.wantStd {
				t.Errorf("Stats = %v, %v; want %v, %v", mean, std, tt.wantMean, tt.wantStd)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	mean := [6]float32{10, 0, 0, 0, 0, 0}
	std := [6]float32{2 - Epsilon, 1 - Epsilon, 0, 1 - Epsilon, 1 - Epsilon, 1 - Epsilon}
	// std + Epsilon is 2, 1 (0 + Epsilon for column 2).
	x := []float32{
		12, 3, 0, 6, -7, nan,
		8, -3, 0, inf, -inf, 0.5,
	}
	want := []float32{
		1, 3, 0, 5, -5, 0,
		-1, -3, 0, 5, -5, 0.5,
	}
	for j, s := range std {
		if d := s + Epsilon; j != 2 && d != 1 && d != 2 {
			t.Fatalf("test setup: std+Epsilon of column %d is %v, want 1 or 2", j, d)
		}
	}
	got := Normalize(x, 2, mean, std, DefaultClip)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Normalize[%d][%d] = %v, want %v", i/6, i%6, got[i], want[i])
		}
	}
	if x[0] != 12 {
		t.Error("Normalize modified its input")
	}
	if got := Normalize([]float32{1, 1, 1, 1, 1, 1}, 1, [6]float32{}, [6]float32{}, 0.5); !slices.Equal(got, []float32{0.5, 0.5, 0.5, 0.5, 0.5, 0.5}) {
		t.Errorf("clip 0.5: got %v", got)
	}
}

func TestDenormalize(t *testing.T) {
	mean := [6]float32{10, 1, 0, 0, 100, 0}
	std := [6]float32{2 - Epsilon, 0, 0, 0, 1 - Epsilon, 0}
	got := Denormalize([]float32{1, 1, 0, -2, -1, 0.5}, 1, mean, std)
	want := []float32{12, 1 + Epsilon, 0, -2 * Epsilon, 99, 0.5 * Epsilon}
	if !slices.Equal(got, want) {
		t.Errorf("Denormalize = %v, want %v", got, want)
	}
}

func TestClampOutput(t *testing.T) {
	nan := float32(math.NaN())
	x := []float32{
		-1, -1, -1, -1, -5, -0.25, // prices untouched, both volume columns clamped
		1, 2, 3, 4, 0, 7,
		1, 2, 3, 4, nan, -1e-30,
	}
	n := ClampOutput(x, 3)
	if n != 3 {
		t.Errorf("clamped %d values, want 3", n)
	}
	want := []float32{-1, -1, -1, -1, 0, 0, 1, 2, 3, 4, 0, 7, 1, 2, 3, 4, nan, 0}
	for i := range want {
		if x[i] != want[i] && !(math.IsNaN(float64(want[i])) && math.IsNaN(float64(x[i]))) {
			t.Errorf("x[%d][%d] = %v, want %v", i/6, i%6, x[i], want[i])
		}
	}
}

func TestTimeFeatures(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	rfc := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	tests := []struct {
		name string
		ts   time.Time
		want [5]int64 // minute, hour, weekday (Mon 0), day, month
	}{
		{"naive as UTC, Monday", time.Date(2024, 6, 24, 13, 25, 0, 0, time.UTC), [5]int64{25, 13, 0, 24, 6}},
		{"Sunday is 6, end of year", rfc("2023-12-31T23:59:00Z"), [5]int64{59, 23, 6, 31, 12}},
		{"Saturday in +08:00", rfc("2024-01-06T09:30:00+08:00"), [5]int64{30, 9, 5, 6, 1}},
		{"the same instant in Z", rfc("2024-01-06T01:30:00Z"), [5]int64{30, 1, 5, 6, 1}},
		{"offset keeps the local date", rfc("2024-03-31T23:30:00-05:00"), [5]int64{30, 23, 6, 31, 3}},
		{"the same instant in Z is the next day", rfc("2024-04-01T04:30:00Z"), [5]int64{30, 4, 0, 1, 4}},
		{"DST: last minute of EST", time.Date(2024, 3, 10, 1, 59, 0, 0, ny), [5]int64{59, 1, 6, 10, 3}},
		{"DST: one minute later is 03:00 EDT", time.Date(2024, 3, 10, 1, 59, 0, 0, ny).Add(time.Minute), [5]int64{0, 3, 6, 10, 3}},
		{"DST: fixed -04:00 offset as given", rfc("2024-03-10T03:00:00-04:00"), [5]int64{0, 3, 6, 10, 3}},
		{"DST fall back: first 01:30 (EDT)", time.Date(2024, 11, 3, 5, 30, 0, 0, time.UTC).In(ny), [5]int64{30, 1, 6, 3, 11}},
		{"DST fall back: second 01:30 (EST)", time.Date(2024, 11, 3, 6, 30, 0, 0, time.UTC).In(ny), [5]int64{30, 1, 6, 3, 11}},
		{"seconds are ignored", rfc("2024-02-29T12:00:59Z"), [5]int64{0, 12, 3, 29, 2}},
	}
	var all []time.Time
	var want []int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TimeFeatures([]time.Time{tt.ts})
			if !slices.Equal(got, tt.want[:]) {
				t.Errorf("TimeFeatures(%v) = %v, want %v", tt.ts, got, tt.want)
			}
		})
		all = append(all, tt.ts)
		want = append(want, tt.want[:]...)
	}
	if got := TimeFeatures(all); !slices.Equal(got, want) {
		t.Errorf("TimeFeatures of all rows = %v, want %v", got, want)
	}
	if got := TimeFeatures(nil); len(got) != 0 {
		t.Errorf("TimeFeatures(nil) = %v", got)
	}
}

func TestBitsToIDs(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name           string
		q              []float32
		n, b1, b2      int
		wantS1, wantS2 []int64
	}{
		{
			name: "first feature is the LSB of s1",
			q:    []float32{0.5, -0.5, 0.1, -0.1, -1, 1, -1, 1},
			n:    1, b1: 4, b2: 4,
			wantS1: []int64{0b0101}, wantS2: []int64{0b1010},
		},
		{
			name: "zero and NaN give bit 0",
			q: []float32{
				0, float32(math.Copysign(0, -1)), nan, 1e-30,
				1, 1, 1, 1,
			},
			n: 1, b1: 4, b2: 4,
			wantS1: []int64{0b1000}, wantS2: []int64{15},
		},
		{
			name: "rows and unequal widths",
			q: []float32{
				1, 1, -1, -1, -1,
				-1, -1, 1, 1, 1,
			},
			n: 2, b1: 2, b2: 3,
			wantS1: []int64{3, 0}, wantS2: []int64{0, 7},
		},
		{
			name: "10+10 bits",
			q: append(
				[]float32{1, -1, -1, -1, -1, -1, -1, -1, -1, 1},
				-1, -1, -1, -1, -1, -1, -1, -1, -1, -1),
			n: 1, b1: 10, b2: 10,
			wantS1: []int64{513}, wantS2: []int64{0},
		},
		{name: "no rows", n: 0, b1: 4, b2: 4, wantS1: []int64{}, wantS2: []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s1, s2 := BitsToIDs(tt.q, tt.n, tt.b1, tt.b2)
			if !slices.Equal(s1, tt.wantS1) || !slices.Equal(s2, tt.wantS2) {
				t.Errorf("BitsToIDs = %v, %v; want %v, %v", s1, s2, tt.wantS1, tt.wantS2)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name   string
		sorted []float32
		q      float64
		want   float64 // NaN for NaN
	}{
		// NumPy's documentation example: np.quantile([[10, 7, 4], [3, 2, 1]], 0.5) == 3.5.
		{"numpy doc median", []float32{1, 2, 3, 4, 7, 10}, 0.5, 3.5},
		{"q 0 is the minimum", []float32{1, 2, 3, 4}, 0, 1},
		{"q 1 is the maximum", []float32{1, 2, 3, 4}, 1, 4},
		{"lower half interpolates from below", []float32{1, 2, 3, 4}, 0.1, 1.3},
		{"upper half interpolates from above", []float32{0, 10}, 0.75, 7.5},
		{"quarter", []float32{0, 10}, 0.25, 2.5},
		{"one value", []float32{42}, 0.9, 42},
		{"ties", []float32{5, 5, 5}, 0.3, 5},
		{"negative values", []float32{-4, -2}, 0.5, -3},
		{"empty", nil, 0.5, math.NaN()},
		{"q below 0", []float32{1, 2}, -0.1, math.NaN()},
		{"q above 1", []float32{1, 2}, 1.5, math.NaN()},
		{"q NaN", []float32{1, 2}, math.NaN(), math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Quantile(tt.sorted, tt.q)
			if math.IsNaN(tt.want) {
				if !math.IsNaN(float64(got)) {
					t.Errorf("Quantile = %v, want NaN", got)
				}
				return
			}
			if got != float32(tt.want) {
				t.Errorf("Quantile = %v, want %v", got, float32(tt.want))
			}
		})
	}
}

// Quantiles of sample paths must be ordered (bug-cases #4: q10 <= q50 <= q90).
func TestQuantileMonotone(t *testing.T) {
	sorted := []float32{-3.5, -1, 0, 0, 2.25, 7, 7, 100, 1e6}
	prev := float32(math.Inf(-1))
	for i := range 1001 {
		q := float64(i) / 1000
		v := Quantile(sorted, q)
		if v < prev {
			t.Fatalf("Quantile(%v) = %v < Quantile of a smaller q = %v", q, v, prev)
		}
		if v < sorted[0] || v > sorted[len(sorted)-1] {
			t.Fatalf("Quantile(%v) = %v outside [%v, %v]", q, v, sorted[0], sorted[len(sorted)-1])
		}
		prev = v
	}
}
