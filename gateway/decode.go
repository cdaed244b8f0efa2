package gateway

import (
	"math"
	"strconv"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// The request decoder reads the JSON body in one pass, in the order of the
// schema, instead of unmarshalling into structs, so that every error names
// its field as a JSON path ("candles[3].high"), including the errors
// encoding/json reports without one: numbers that overflow float64 (1e400),
// a NaN or Infinity literal, a wrong type inside an array, an unknown or
// duplicated key. It also tells a missing key from an explicit null, which
// the fill rules need. Arrays are checked against their limits while they
// are read, so an oversized one is rejected before it is held in memory.
//
// The scanner (jsonscan.go) builds the path of a value only when it reports
// an error and allocates nothing per value: a request of 400 candles takes
// some 40 allocations, and decodes about 20 times faster than the walk over
// encoding/json's Decoder.Token it replaced (BenchmarkOverheadDecode400
// runs both).
//
// Decoding stops at the first error. The decoder keeps no state between
// requests and never panics on any input (see FuzzPredictSingle).

// fieldErr returns an invalid-input error for path; an empty path means the
// body as a whole.
func fieldErr(path, format string, args ...any) error {
	if path == "" {
		return infer.Errorf(infer.KindInvalid, "request body: "+format, args...)
	}
	return infer.Field(path, format, args...)
}

// key is the path of key k in the object at path.
func key(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// index is the path of element i of the array at path.
func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// clip shortens client text quoted in messages.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// decodeLimits bound the arrays of one request while it is decoded, so that
// an oversized list is rejected before it is held in memory.
type decodeLimits struct {
	candles   int // candles and timestamps
	steps     int // prediction_timestamps
	quantiles int
}

// Known keys, listed in the error for an unknown one. The decoder switches
// on their indexes (the constants below): keep both in step.
var (
	predictKeys  = []string{"series_id", "model", "candles", "timestamps", "prediction_timestamps", "overrides", "quantiles", "return_samples"}
	candleKeys   = []string{"open", "high", "low", "close", "volume", "amount"}
	overrideKeys = []string{"temperature", "top_k", "top_p", "sample_count", "seed", "pred_len"}
	batchKeys    = []string{"items"}

	// keyLists are the lists by the numbers the decoder gives them.
	keyLists = [...][]string{predictKeys, candleKeys, overrideKeys, batchKeys}
)

// Numbers of the key lists.
const (
	predictList = iota
	candleList
	overrideList
	batchList
)

const (
	pkSeriesID = iota
	pkModel
	pkCandles
	pkTimestamps
	pkPrediction
	pkOverrides
	pkQuantiles
	pkReturnSamples
)

const (
	ckOpen = iota
	ckHigh
	ckLow
	ckClose
	ckVolume
	ckAmount
)

const (
	okTemperature = iota
	okTopK
	okTopP
	okSampleCount
	okSeed
	okPredLen
)

// decodePredict decodes a POST /v1/predict/single body. It checks the JSON
// types, keys and nulls; the rules that relate values (ordering, lengths,
// bounds) are in validate.go.
func decodePredict(body []byte, lim decodeLimits) (*predictRequest, error) {
	d := newDecoder(body)
	if err := d.open(kObject, "an object"); err != nil {
		return nil, err
	}
	r := new(predictRequest)
	if err := d.predict(r, lim); err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeBatch decodes a POST /v1/predict/batch body:
//
//	{"items": [<a /v1/predict/single body>, ...]}
//
// Every item has the fields of a single request, and errors name them
// under "items[i]" ("items[2].candles[5].high"). The array is rejected
// while it is read once it holds more than maxItems items, and an empty
// one is rejected too.
func decodeBatch(body []byte, lim decodeLimits, maxItems int) ([]*predictRequest, error) {
	d := newDecoder(body)
	if err := d.open(kObject, "an object"); err != nil {
		return nil, err
	}
	var items []*predictRequest
	hasItems := false
	var seen uint32
	for n := 0; ; n++ {
		if i, err := d.nextKey(n, batchList, &seen); err != nil {
			return nil, err
		} else if i < 0 {
			break
		}
		hasItems = true
		if err := d.open(kArray, "an array"); err != nil {
			return nil, err
		}
		for i := 0; ; i++ {
			if more, err := d.nextElem(i, maxItems); err != nil {
				return nil, err
			} else if !more {
				break
			}
			if err := d.open(kObject, "an object"); err != nil {
				return nil, err
			}
			r := new(predictRequest)
			items = append(items, r)
			if err := d.predict(r, lim); err != nil {
				return nil, err
			}
			d.pop()
		}
		d.pop()
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	switch {
	case !hasItems:
		return nil, infer.Field("items", "is required")
	case len(items) == 0:
		return nil, infer.Field("items", "must hold at least one item (at most %d, KRONOS_MAX_BATCH_ITEMS)", maxItems)
	}
	return items, nil
}

// open reads the next value, which must be of kind k (kObject or kArray;
// want names it).
func (d *decoder) open(k kind, want string) error {
	got, err := d.token()
	if err != nil {
		return err
	}
	if got != k {
		return d.typeErr(want, got)
	}
	return nil
}

// predict reads the keys of a request object whose '{' has been read.
func (d *decoder) predict(r *predictRequest, lim decodeLimits) error {
	var seen uint32
	for n := 0; ; n++ {
		i, err := d.nextKey(n, predictList, &seen)
		if err != nil || i < 0 {
			return err
		}
		if err := d.predictField(r, i, lim); err != nil {
			return err
		}
		d.pop()
	}
}

// predictField reads the value of predictKeys[i].
func (d *decoder) predictField(r *predictRequest, i int, lim decodeLimits) error {
	switch i {
	case pkSeriesID:
		s, null, err := d.stringVal()
		if err != nil || null {
			return err
		}
		r.SeriesID = &s
	case pkModel:
		s, _, err := d.stringVal()
		r.Model = s // null or "" is the default model
		return err
	case pkCandles:
		r.hasCandles = true
		if err := d.open(kArray, "an array"); err != nil {
			return err
		}
		r.Candles = []preprocess.Candle{}
		for j := 0; ; j++ {
			if more, err := d.nextElem(j, lim.candles); err != nil || !more {
				return err
			}
			c, err := d.candle()
			if err != nil {
				return err
			}
			r.Candles = append(r.Candles, c)
			d.pop()
		}
	case pkTimestamps:
		r.hasTimestamps = true
		s, err := d.stamps(lim.candles)
		r.Timestamps = s
		return err
	case pkPrediction:
		r.hasPrediction = true
		s, err := d.stamps(lim.steps)
		r.PredictionTimestamps = s
		return err
	case pkOverrides:
		return d.overrides(&r.Overrides)
	case pkQuantiles:
		k, err := d.token()
		if err != nil || k == kNull {
			return err
		}
		if k != kArray {
			return d.typeErr("an array", k)
		}
		r.Quantiles = []float64{}
		for j := 0; ; j++ {
			if more, err := d.nextElem(j, lim.quantiles); err != nil || !more {
				return err
			}
			q, _, err := d.number(false)
			if err != nil {
				return err
			}
			r.Quantiles = append(r.Quantiles, q)
			d.pop()
		}
	case pkReturnSamples:
		b, _, err := d.boolean()
		r.ReturnSamples = b
		return err
	}
	return nil
}

// candle decodes one {open, high, low, close, volume?, amount?} object.
// volume and amount may be left out (see preprocess.Fill) but not null: a
// null would otherwise have to be guessed as "missing" or "zero".
func (d *decoder) candle() (preprocess.Candle, error) {
	var c preprocess.Candle
	if err := d.open(kObject, "an object"); err != nil {
		return c, err
	}
	var seen uint32
	for n := 0; ; n++ {
		i, err := d.nextKey(n, candleList, &seen)
		if err != nil {
			return c, err
		}
		if i < 0 {
			break
		}
		v, null, err := d.number(i >= ckVolume)
		if err != nil {
			return c, err
		}
		switch i {
		case ckOpen:
			c.Open = v
		case ckHigh:
			c.High = v
		case ckLow:
			c.Low = v
		case ckClose:
			c.Close = v
		default:
			if null {
				return c, d.errf("must not be null; to mark %s as unknown, leave the key out of every candle", candleKeys[i])
			}
			if i == ckVolume {
				c.Volume = d.float(v)
			} else {
				c.Amount = d.float(v)
			}
		}
		d.pop()
	}
	for i := range ckVolume {
		if seen&(1<<i) == 0 {
			return c, fieldErr(key(d.pathString(), candleKeys[i]), "is required")
		}
	}
	return c, nil
}

// float returns a pointer to a copy of v. The copies are allocated in
// chunks that the request keeps.
func (d *decoder) float(v float64) *float64 {
	if len(d.floats) == cap(d.floats) {
		d.floats = make([]float64, 0, min(2*cap(d.floats)+16, 1024))
	}
	d.floats = append(d.floats, v)
	return &d.floats[len(d.floats)-1]
}

// stamps decodes an array of date-time strings.
func (d *decoder) stamps(limit int) ([]stamp, error) {
	if err := d.open(kArray, "an array"); err != nil {
		return nil, err
	}
	out := []stamp{}
	for i := 0; ; i++ {
		if more, err := d.nextElem(i, limit); err != nil || !more {
			return out, err
		}
		k, err := d.token()
		if err != nil {
			return out, err
		}
		if k != kString {
			return out, d.typeErr("a date-time string", k)
		}
		st, err := d.stamp()
		if err != nil {
			return out, err
		}
		out = append(out, st)
		d.pop()
	}
}

// stamp parses the last string token as a timestamp.
func (d *decoder) stamp() (stamp, error) {
	var st stamp
	var err error
	if s := d.buf[d.start+1 : d.stop-1]; d.plain {
		st, err = parseStampBytes(s)
	} else {
		st, err = parseStamp(d.text())
	}
	if err != nil {
		return st, d.errf("%q %v", clip(d.text()), err)
	}
	return st, nil
}

// overrides decodes the overrides object; null or a left-out key means the
// default.
func (d *decoder) overrides(o *overrides) error {
	k, err := d.token()
	if err != nil || k == kNull {
		return err
	}
	if k != kObject {
		return d.typeErr("an object", k)
	}
	var seen uint32
	for n := 0; ; n++ {
		i, err := d.nextKey(n, overrideList, &seen)
		if err != nil || i < 0 {
			return err
		}
		switch i {
		case okTemperature, okTopP:
			v, null, err := d.number(true)
			if err != nil {
				return err
			}
			if !null {
				if i == okTemperature {
					o.Temperature = &v
				} else {
					o.TopP = &v
				}
			}
		case okTopK, okSampleCount, okPredLen:
			v, null, err := d.integer()
			if err != nil {
				return err
			}
			if !null {
				switch i {
				case okTopK:
					o.TopK = &v
				case okSampleCount:
					o.SampleCount = &v
				default:
					o.PredLen = &v
				}
			}
		case okSeed:
			v, null, err := d.seed()
			if err != nil {
				return err
			}
			if !null {
				o.Seed = &v
			}
		}
		d.pop()
	}
}

// Scalars, read at the current path. The JSON syntax of the token is
// checked before its type.

// number reads a float64; null is reported through isNull and is an error
// unless nullable. A number that overflows float64 is rejected.
func (d *decoder) number(nullable bool) (v float64, isNull bool, err error) {
	k, err := d.token()
	if err != nil {
		return 0, false, err
	}
	if k != kNumber {
		if k == kNull && nullable {
			return 0, true, nil
		}
		return 0, false, d.typeErr("a number", k)
	}
	v, err = parseFloat(d.raw())
	if err != nil {
		return 0, false, d.errf("number %s is out of range for a 64-bit float", clip(string(d.raw())))
	}
	return v, false, nil
}

// integer reads an integer; an integral value written as a float ("5.0",
// "1e3") is accepted. null gives isNull. Ranges are checked by the caller.
func (d *decoder) integer() (v int64, isNull bool, err error) {
	k, err := d.token()
	if err != nil {
		return 0, false, err
	}
	if k == kNull {
		return 0, true, nil
	}
	if k != kNumber {
		return 0, false, d.typeErr("an integer", k)
	}
	v, perr := strconv.ParseInt(string(d.raw()), 10, 64)
	if perr != nil {
		f, ferr := strconv.ParseFloat(string(d.raw()), 64)
		if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, false, d.errf("expected an integer, got %s", clip(string(d.raw())))
		}
		v = int64(f)
	}
	return v, false, nil
}

// seed reads an unsigned 64-bit integer; null gives isNull.
func (d *decoder) seed() (v uint64, isNull bool, err error) {
	k, err := d.token()
	if err != nil {
		return 0, false, err
	}
	if k == kNull {
		return 0, true, nil
	}
	if k != kNumber {
		return 0, false, d.typeErr("an integer", k)
	}
	v, perr := strconv.ParseUint(string(d.raw()), 10, 64)
	if perr != nil {
		f, ferr := strconv.ParseFloat(string(d.raw()), 64)
		if ferr != nil || f != math.Trunc(f) || f < 0 || f >= math.MaxUint64 {
			return 0, false, d.errf("expected an integer in [0, 2^64-1], got %s", clip(string(d.raw())))
		}
		v = uint64(f)
	}
	return v, false, nil
}

// stringVal reads a string; null gives isNull.
func (d *decoder) stringVal() (s string, isNull bool, err error) {
	k, err := d.token()
	if err != nil {
		return "", false, err
	}
	if k == kNull {
		return "", true, nil
	}
	if k != kString {
		return "", false, d.typeErr("a string", k)
	}
	return d.text(), false, nil
}

// boolean reads a boolean; null gives isNull.
func (d *decoder) boolean() (b, isNull bool, err error) {
	k, err := d.token()
	if err != nil {
		return false, false, err
	}
	switch k {
	case kTrue, kFalse:
		return k == kTrue, false, nil
	case kNull:
		return false, true, nil
	}
	return false, false, d.typeErr("a boolean", k)
}
