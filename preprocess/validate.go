package preprocess

import (
	"fmt"
	"math"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// ValidateCandles checks candles before Fill and returns an *infer.FieldError
// (which matches infer.ErrInvalid) naming the first bad field as a JSON path
// such as "candles[17].high", or nil if every candle is fine. path is the
// prefix of the candle list in the request, e.g. "candles" or
// "items[2].candles".
//
// Candles are checked in order, and within a candle the fields in the order
// open, high, low, close, volume, amount, then the OHLC consistency. The rules:
//
//   - the list is not empty (the error then names path itself);
//   - every given number is finite (no NaN or ±Inf) and representable as a
//     finite float32, since the model computes in float32 (|v| <=
//     math.MaxFloat32);
//   - open, high, low and close are > 0;
//   - volume and amount, when present, are >= 0;
//   - volume and amount are each given for all candles or for none: the fill
//     rules of Fill apply per column, so a column given for some candles
//     only is rejected at the first candle that differs from candles[0];
//     for validated candles, Fill's hasVolume is candles[0].Volume != nil and
//     hasAmount is candles[0].Amount != nil;
//   - when volume is given and amount is not, the amount that Fill derives,
//     volume * (open+high+low+close)/4, is a finite float32 too (the error
//     names volume);
//   - OHLC consistency, as the seed service checks it: low <= high (the error
//     names low), low <= min(open, close) (names low) and high >= max(open,
//     close) (names high). Every such message names the values involved.
//
// An amount given without a volume is validated, although Fill then ignores
// it (upstream sets both to 0 when volume is missing).
func ValidateCandles(c []Candle, path string) error {
	if len(c) == 0 {
		return infer.Field(path, "must hold at least one candle")
	}
	hasVolume, hasAmount := c[0].Volume != nil, c[0].Amount != nil
	for i := range c {
		k := &c[i]
		field := func(name string) string { return fmt.Sprintf("%s[%d].%s", path, i, name) }
		prices := [...]struct {
			name string
			v    float64
		}{{"open", k.Open}, {"high", k.High}, {"low", k.Low}, {"close", k.Close}}
		for _, p := range prices {
			if reason := checkNumber(p.v); reason != "" {
				return infer.Field(field(p.name), "%s", reason)
			}
			if !(p.v > 0) {
				return infer.Field(field(p.name), "must be > 0, got %v", p.v)
			}
			if p.v < minPrice {
				return infer.Field(field(p.name), "%v is too small: prices below %v underflow float32 (rescale the instrument, e.g. quote in smaller units)", p.v, minPrice)
			}
		}
		for _, q := range [...]struct {
			name    string
			v       *float64
			present bool
		}{{"volume", k.Volume, hasVolume}, {"amount", k.Amount, hasAmount}} {
			if (q.v != nil) != q.present {
				return infer.Field(field(q.name), "%s", presenceReason(path, q.name, q.present))
			}
			if q.v == nil {
				continue
			}
			if reason := checkNumber(*q.v); reason != "" {
				return infer.Field(field(q.name), "%s", reason)
			}
			if !(*q.v >= 0) {
				return infer.Field(field(q.name), "must be >= 0, got %v", *q.v)
			}
		}
		if hasVolume && !hasAmount {
			avg := (((k.Open + k.High) + k.Low) + k.Close) / 4
			if a := *k.Volume * avg; math.Abs(a) > math.MaxFloat32 {
				return infer.Field(field("volume"),
					"the derived amount volume*(open+high+low+close)/4 = %v is too large for float32", a)
			}
		}
		switch {
		case k.Low > k.High:
			return infer.Field(field("low"), "low %v is above high %v", k.Low, k.High)
		case k.Low > min(k.Open, k.Close):
			return infer.Field(field("low"), "low %v is above min(open %v, close %v)", k.Low, k.Open, k.Close)
		case k.High < max(k.Open, k.Close):
			return infer.Field(field("high"), "high %v is below max(open %v, close %v)", k.High, k.Open, k.Close)
		}
	}
	return nil
}

// minPrice is the smallest accepted price: the smallest normal float32.
// Smaller positive prices become subnormal or 0 in the model's float32
// arithmetic.
const minPrice = 0x1p-126

// checkNumber returns why v cannot be used, or "" if it can.
func checkNumber(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprintf("must be a finite number, got %v", v)
	case math.Abs(v) > math.MaxFloat32:
		return fmt.Sprintf("%v is too large for float32 (max %v)", v, math.MaxFloat32)
	}
	return ""
}

func presenceReason(path, name string, present bool) string {
	if present {
		return fmt.Sprintf("is missing, but %s[0].%s is given (give %s for every candle or for none)", path, name, name)
	}
	return fmt.Sprintf("is given, but %s[0].%s is not (give %s for every candle or for none)", path, name, name)
}
