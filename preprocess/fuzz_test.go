package preprocess

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// maxFuzzRows caps the candles decoded from one fuzz input, so that each
// execution stays fast.
const maxFuzzRows = 300

// fuzzCandleBytes is the size of one encoded candle: a presence byte (bit 0
// volume, bit 1 amount) and six little-endian float64 values.
const fuzzCandleBytes = 1 + 6*8

// decodeFuzzCandles turns fuzz bytes into candles (see fuzzCandleBytes).
func decodeFuzzCandles(data []byte) []Candle {
	var c []Candle
	for len(data) >= fuzzCandleBytes && len(c) < maxFuzzRows {
		flags := data[0]
		var v [6]float64
		for j := range v {
			v[j] = math.Float64frombits(binary.LittleEndian.Uint64(data[1+8*j:]))
		}
		k := Candle{Open: v[0], High: v[1], Low: v[2], Close: v[3]}
		if flags&1 != 0 {
			k.Volume = &v[4]
		}
		if flags&2 != 0 {
			k.Amount = &v[5]
		}
		c = append(c, k)
		data = data[fuzzCandleBytes:]
	}
	return c
}

// encodeFuzzCandles is the inverse of decodeFuzzCandles, for seeds.
func encodeFuzzCandles(c []Candle) []byte {
	var b []byte
	for _, k := range c {
		var flags byte
		vol, amt := 0.0, 0.0
		if k.Volume != nil {
			flags |= 1
			vol = *k.Volume
		}
		if k.Amount != nil {
			flags |= 2
			amt = *k.Amount
		}
		b = append(b, flags)
		for _, v := range [...]float64{k.Open, k.High, k.Low, k.Close, vol, amt} {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	return b
}

// fuzzSeeds are seed candle lists: realistic ones and the edge cases of the
// table tests.
func fuzzSeeds() [][]Candle {
	nan, inf := math.NaN(), math.Inf(1)
	return [][]Candle{
		good(8),
		good(130), // beyond the pairwise block size
		{{Open: 10.88, High: 10.9, Low: 10.87, Close: 10.88, Volume: f64(566), Amount: f64(615831)},
			{Open: 10.89, High: 10.89, Low: 10.87, Close: 10.89, Volume: f64(231), Amount: f64(251370)}},
		{{Open: 1, High: 1, Low: 1, Close: 1}},
		{{Open: 10, High: 10, Low: 10, Close: 10, Volume: f64(0), Amount: f64(0)}},
		{{Open: nan, High: inf, Low: -inf, Close: 0, Volume: f64(-1), Amount: f64(1e39)}},
		{{Open: 1e38, High: 3e38, Low: 1e38, Close: 2e38, Volume: f64(1e38)}},
		{{Open: 1e-300, High: 1e-300, Low: 1e-300, Close: 1e-300, Volume: f64(5e-324)}},
		with(3, 1, func(c *Candle) { c.Volume = nil }),
		with(2, 0, func(c *Candle) { c.Low, c.High = 11, 9 }),
	}
}

// FuzzNormalize checks that Fill, Stats and Normalize never panic and that
// the normalised matrix has the input's shape and only finite values within
// [-clip, clip], whatever the candles (including non-finite ones).
func FuzzNormalize(f *testing.F) {
	for i, c := range fuzzSeeds() {
		f.Add(encodeFuzzCandles(c), i%2 == 0, i%3 == 0, float32(DefaultClip))
	}
	f.Add([]byte{}, true, true, float32(0.25))
	f.Fuzz(func(t *testing.T, data []byte, hasVolume, hasAmount bool, clip float32) {
		if !(clip > 0) || math.IsInf(float64(clip), 0) {
			clip = DefaultClip
		}
		c := decodeFuzzCandles(data)
		rows := len(c)
		x := Fill(c, hasVolume, hasAmount)
		if len(x) != rows*NumColumns {
			t.Fatalf("Fill: %d values for %d rows", len(x), rows)
		}
		mean, std := Stats(x, rows)
		xn := Normalize(x, rows, mean, std, clip)
		if len(xn) != len(x) {
			t.Fatalf("Normalize: %d values for %d", len(xn), len(x))
		}
		for i, v := range xn {
			if math.IsNaN(float64(v)) || v > clip || v < -clip {
				t.Fatalf("x_norm[%d][%d] = %v, want finite within ±%v (x %v, mean %v, std %v)",
					i/6, i%6, v, clip, x[i], mean[i%6], std[i%6])
			}
			if !hasVolume && i%6 >= ColVolume && v != 0 {
				t.Fatalf("x_norm[%d][%d] = %v for a zero-filled column", i/6, i%6, v)
			}
		}
		if got := Denormalize(xn, rows, mean, std); len(got) != len(x) {
			t.Fatalf("Denormalize: %d values for %d", len(got), len(x))
		}
	})
}

// FuzzValidateCandles checks that ValidateCandles never panics, that its
// errors are *infer.FieldError under the given path, and that candles it
// accepts satisfy every documented rule and fill to finite float32 values.
func FuzzValidateCandles(f *testing.F) {
	for _, c := range fuzzSeeds() {
		f.Add(encodeFuzzCandles(c), "candles")
	}
	f.Add([]byte{}, "items[3].candles")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		c := decodeFuzzCandles(data)
		err := ValidateCandles(c, path)
		if err != nil {
			var fe *infer.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, infer.ErrInvalid) {
				t.Fatalf("error %T %v is not an invalid-input *infer.FieldError", err, err)
			}
			if !strings.HasPrefix(fe.Field, path) || fe.Reason == "" {
				t.Fatalf("field %q reason %q: want a field under %q and a reason", fe.Field, fe.Reason, path)
			}
			return
		}
		if len(c) == 0 {
			t.Fatal("accepted an empty candle list")
		}
		hasV, hasA := c[0].Volume != nil, c[0].Amount != nil
		ok32 := func(v float64) bool { return !math.IsNaN(v) && math.Abs(v) <= math.MaxFloat32 }
		for i, k := range c {
			for _, p := range [...]float64{k.Open, k.High, k.Low, k.Close} {
				if !ok32(p) || !(p > 0) {
					t.Fatalf("accepted candles[%d] with price %v", i, p)
				}
			}
			for _, q := range [...]*float64{k.Volume, k.Amount} {
				if q != nil && (!ok32(*q) || !(*q >= 0)) {
					t.Fatalf("accepted candles[%d] with volume/amount %v", i, *q)
				}
			}
			if (k.Volume != nil) != hasV || (k.Amount != nil) != hasA {
				t.Fatalf("accepted candles[%d] with a volume/amount column given for some candles only", i)
			}
			if k.Low > k.High || k.Low > min(k.Open, k.Close) || k.High < max(k.Open, k.Close) {
				t.Fatalf("accepted inconsistent candles[%d] %+v", i, k)
			}
		}
		for i, v := range Fill(c, hasV, hasA) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("Fill of accepted candles: x_filled[%d][%d] = %v", i/6, i%6, v)
			}
		}
	})
}
