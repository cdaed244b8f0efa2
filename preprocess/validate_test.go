package preprocess

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// good returns n valid OHLCV candles.
func good(n int) []Candle {
	c := make([]Candle, n)
	for i := range c {
		c[i] = Candle{Open: 10, High: 10.5, Low: 9.5, Close: 10.2, Volume: f64(100), Amount: f64(1000)}
	}
	return c
}

// with returns good(n) with candle i changed by f.
func with(n, i int, f func(*Candle)) []Candle {
	c := good(n)
	f(&c[i])
	return c
}

func TestValidateCandles(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name      string
		in        []Candle
		path      string
		wantField string // "" for no error
		wantIn    string // substring of the reason
	}{
		{name: "valid", in: good(3), path: "candles"},
		{name: "ohlc only", in: []Candle{{Open: 1, High: 1, Low: 1, Close: 1}}, path: "candles"},
		{name: "doji at the extremes", in: []Candle{{Open: 2, High: 2, Low: 1, Close: 1}}, path: "candles"},
		{name: "empty", in: nil, path: "candles", wantField: "candles", wantIn: "at least one"},
		{name: "empty batch item", in: []Candle{}, path: "items[2].candles", wantField: "items[2].candles"},
		{name: "NaN open", in: with(3, 1, func(c *Candle) { c.Open = nan }), path: "candles", wantField: "candles[1].open", wantIn: "finite"},
		{name: "+Inf high", in: with(3, 2, func(c *Candle) { c.High = inf }), path: "candles", wantField: "candles[2].high", wantIn: "+Inf"},
		{name: "-Inf low", in: with(1, 0, func(c *Candle) { c.Low = -inf }), path: "candles", wantField: "candles[0].low", wantIn: "-Inf"},
		{name: "NaN close", in: with(2, 1, func(c *Candle) { c.Close = nan }), path: "candles", wantField: "candles[1].close", wantIn: "NaN"},
		{name: "NaN volume", in: with(2, 1, func(c *Candle) { c.Volume = f64(nan) }), path: "candles", wantField: "candles[1].volume", wantIn: "finite"},
		{name: "Inf amount", in: with(2, 0, func(c *Candle) { c.Amount = f64(inf) }), path: "candles", wantField: "candles[0].amount", wantIn: "finite"},
		{name: "beyond float32", in: with(1, 0, func(c *Candle) { c.Amount = f64(1e39) }), path: "candles", wantField: "candles[0].amount", wantIn: "float32"},
		{name: "zero open", in: with(1, 0, func(c *Candle) { c.Open = 0 }), path: "candles", wantField: "candles[0].open", wantIn: "> 0"},
		{name: "negative zero close", in: with(1, 0, func(c *Candle) { c.Close = math.Copysign(0, -1) }), path: "candles", wantField: "candles[0].close", wantIn: "> 0"},
		{name: "negative low", in: with(1, 0, func(c *Candle) { c.Low = -1 }), path: "candles", wantField: "candles[0].low", wantIn: "got -1"},
		{name: "zero volume is fine", in: with(1, 0, func(c *Candle) { c.Volume = f64(0) }), path: "candles"},
		{name: "negative volume", in: with(4, 3, func(c *Candle) { c.Volume = f64(-2) }), path: "items[0].candles", wantField: "items[0].candles[3].volume", wantIn: ">= 0"},
		{name: "negative amount", in: with(4, 0, func(c *Candle) { c.Amount = f64(-1) }), path: "candles", wantField: "candles[0].amount", wantIn: ">= 0"},
		{name: "volume missing once", in: with(3, 2, func(c *Candle) { c.Volume = nil }), path: "candles", wantField: "candles[2].volume", wantIn: "candles[0].volume is given"},
		{name: "amount given once", in: []Candle{{Open: 1, High: 1, Low: 1, Close: 1}, {Open: 1, High: 1, Low: 1, Close: 1, Amount: f64(1)}}, path: "candles", wantField: "candles[1].amount", wantIn: "is not"},
		{name: "low above high", in: with(1, 0, func(c *Candle) { c.Low, c.High = 11, 9 }), path: "candles", wantField: "candles[0].low", wantIn: "low 11 is above high 9"},
		{name: "low above open", in: with(2, 1, func(c *Candle) { c.Low = 10.1 }), path: "candles", wantField: "candles[1].low", wantIn: "min(open 10, close 10.2)"},
		{name: "low above close", in: with(1, 0, func(c *Candle) { c.Close = 9.4 }), path: "candles", wantField: "candles[0].low", wantIn: "low 9.5"},
		{name: "high below close", in: with(1, 0, func(c *Candle) { c.Close = 10.6 }), path: "candles", wantField: "candles[0].high", wantIn: "high 10.5 is below max(open 10, close 10.6)"},
		{name: "high below open", in: with(1, 0, func(c *Candle) { c.Open = 10.7 }), path: "candles", wantField: "candles[0].high", wantIn: "open 10.7"},
		{name: "first bad field wins", in: with(2, 1, func(c *Candle) { c.Open, c.Close = -1, nan }), path: "candles", wantField: "candles[1].open"},
		{name: "first bad candle wins", in: func() []Candle {
			c := good(5)
			c[3].High = 0
			c[4].Open = nan
			return c
		}(), path: "candles", wantField: "candles[3].high"},
		{name: "derived amount overflows", in: []Candle{{Open: 1e20, High: 1e20, Low: 1e20, Close: 1e20, Volume: f64(1e20)}}, path: "candles", wantField: "candles[0].volume", wantIn: "derived amount"},
		{name: "given amount is not derived", in: []Candle{{Open: 1e20, High: 1e20, Low: 1e20, Close: 1e20, Volume: f64(1e20), Amount: f64(1)}}, path: "candles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidateErr(t, ValidateCandles(tt.in, tt.path), tt.wantField, tt.wantIn)
		})
	}
}

func checkValidateErr(t *testing.T, err error, wantField, wantIn string) {
	t.Helper()
	if wantField == "" {
		if err != nil {
			t.Fatalf("ValidateCandles = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("ValidateCandles = nil, want an error for %s", wantField)
	}
	var fe *infer.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("ValidateCandles = %T %v, want *infer.FieldError", err, err)
	}
	if !errors.Is(err, infer.ErrInvalid) || infer.KindOf(err) != infer.KindInvalid {
		t.Errorf("error %v does not match infer.ErrInvalid", err)
	}
	if fe.Field != wantField {
		t.Errorf("field = %q, want %q (error: %v)", fe.Field, wantField, err)
	}
	if !strings.Contains(fe.Reason, wantIn) {
		t.Errorf("reason %q does not contain %q", fe.Reason, wantIn)
	}
}

// corpusCandle is the JSON shape of the test corpora under testdata/validate
// (test only: the gateway owns the request schema). An absent volume or
// amount decodes to nil.
type corpusCandle struct {
	Open, High, Low, Close float64
	Volume, Amount         *float64
}

// badCorpus names, for every testdata/validate/*.bad.json, the field the
// error must name.
var badCorpus = map[string]string{
	"empty.bad.json":                   "candles",
	"zero_open.bad.json":               "candles[0].open",
	"negative_close.bad.json":          "candles[1].close",
	"high_below_close.bad.json":        "candles[2].high",
	"high_below_open.bad.json":         "candles[0].high",
	"low_above_open.bad.json":          "candles[1].low",
	"low_above_high.bad.json":          "candles[0].low",
	"negative_volume.bad.json":         "candles[3].volume",
	"negative_amount.bad.json":         "candles[0].amount",
	"volume_missing_once.bad.json":     "candles[1].volume",
	"volume_given_once.bad.json":       "candles[1].volume",
	"amount_missing_once.bad.json":     "candles[2].amount",
	"price_too_large.bad.json":         "candles[0].high",
	"derived_amount_overflow.bad.json": "candles[0].volume",
}

// TestValidateCorpus runs ValidateCandles on the good and bad corpora under
// testdata/validate and pins the exact messages of the bad ones (the API
// returns them to callers) in testdata/validate/messages.golden.
func TestValidateCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "validate", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden bytes.Buffer
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			var raw []corpusCandle
			readJSON(t, f, &raw)
			c := make([]Candle, len(raw))
			for i, r := range raw {
				c[i] = Candle(r)
			}
			err := ValidateCandles(c, "candles")
			switch {
			case strings.HasSuffix(name, ".good.json"):
				checkValidateErr(t, err, "", "")
			case strings.HasSuffix(name, ".bad.json"):
				want, ok := badCorpus[name]
				if !ok {
					t.Fatalf("add %s to badCorpus with the field its error must name", name)
				}
				seen[name] = true
				checkValidateErr(t, err, want, "")
				fmt.Fprintf(&golden, "%s: %v\n", name, err)
			default:
				t.Fatalf("%s: name must end in .good.json or .bad.json", name)
			}
		})
	}
	for name := range badCorpus {
		if !seen[name] {
			t.Errorf("badCorpus lists %s, which is not under testdata/validate", name)
		}
	}

	goldenPath := filepath.Join("testdata", "validate", "messages.golden")
	if *update {
		if err := os.WriteFile(goldenPath, golden.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v; run `go test ./preprocess -run TestValidateCorpus -update` to create it", err)
	}
	if got := golden.String(); got != string(want) {
		t.Errorf("validation messages differ from %s:\n got:\n%s\nwant:\n%s\n"+
			"If the change is intended, run `go test ./preprocess -run TestValidateCorpus -update` and review the diff.",
			goldenPath, got, want)
	}
}

func TestValidateTinyPrices(t *testing.T) {
	vol := 1.0
	for _, tc := range []struct {
		price float64
		ok    bool
	}{{1e-46, false}, {1e-40, false}, {1e-300, false}, {1.1754943508222875e-38, true}, {1e-9, true}} {
		c := []Candle{{Open: tc.price, High: tc.price, Low: tc.price, Close: tc.price, Volume: &vol}}
		err := ValidateCandles(c, "candles")
		if (err == nil) != tc.ok {
			t.Errorf("price %v: err = %v, want ok %v", tc.price, err, tc.ok)
		}
	}
}
