//go:build !goexperiment.jsonv2

package gateway

// The request decoder as it was before the single-pass scanner
// (encoding/json's Decoder.Token, a path string per value), kept as the
// oracle of the differential tests below: the decoder must accept the same
// bodies with the same result and reject the others with the same field and
// message (only the offset of "invalid JSON at byte N" differs: here it is
// not always a position in the body). The messages are those of
// encoding/json v1, hence the build constraint.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// The request legacyDecoder walks the JSON body token by token (encoding/json's
// Decoder.Token with UseNumber) instead of unmarshalling into structs, so
// that every error names its field as a JSON path ("candles[3].high"),
// including the errors encoding/json reports without one: numbers that
// overflow float64 (1e400), a NaN or Infinity literal, a wrong type inside
// an array, an unknown or duplicated key. It also tells a missing key from
// an explicit null, which the fill rules need.
//
// Decoding stops at the first error. The legacyDecoder keeps no state between
// requests and never panics on any input (see FuzzPredictSingle).

// legacyDecoder reads one JSON document.
type legacyDecoder struct {
	body []byte
	dec  *json.Decoder
}

func newLegacyDecoder(body []byte) *legacyDecoder {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	return &legacyDecoder{body: body, dec: d}
}

// legacyFieldErr returns an invalid-input error for path; an empty path means the
// body as a whole.
func legacyFieldErr(path, format string, args ...any) error {
	if path == "" {
		return infer.Errorf(infer.KindInvalid, "request body: "+format, args...)
	}
	return infer.Field(path, format, args...)
}

// next reads the next token; a syntax error is reported at path.
func (d *legacyDecoder) next(path string) (json.Token, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return nil, d.syntaxErr(path, err)
	}
	return tok, nil
}

// syntaxErr words a tokenizer error for the client.
func (d *legacyDecoder) syntaxErr(path string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if len(bytes.TrimSpace(d.body)) == 0 {
			return legacyFieldErr("", "is empty; expected a JSON object")
		}
		return legacyFieldErr(path, "unexpected end of JSON input")
	}
	// Point at the value the tokenizer choked on: skip separators after the
	// last good token.
	rest := d.body[min(int(d.dec.InputOffset()), len(d.body)):]
	rest = bytes.TrimLeft(rest, " \t\r\n,:")
	for _, lit := range []string{"NaN", "Infinity", "+Infinity", "-Infinity", "inf", "-inf", "+inf", "nan"} {
		if bytes.HasPrefix(rest, []byte(lit)) {
			return legacyFieldErr(path, "%s is not a JSON number; send finite numbers only", lit)
		}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return legacyFieldErr(path, "invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return legacyFieldErr(path, "invalid JSON: %s", err.Error())
}

// legacyDescribe names the JSON type of a token for error messages.
func legacyDescribe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "an unexpected token"
}

func legacyTypeErr(path, want string, tok json.Token) error {
	return legacyFieldErr(path, "expected %s, got %s", want, legacyDescribe(tok))
}

// child paths.
func legacyKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func legacyIndex(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// object reads an object whose '{' is tok, calling fn for each key with the
// key's path; fn must consume the value. Duplicate keys are rejected.
func (d *legacyDecoder) object(path string, tok json.Token, fn func(k, p string) error) error {
	if del, ok := tok.(json.Delim); !ok || del != '{' {
		return legacyTypeErr(path, "an object", tok)
	}
	seen := make(map[string]bool, 8)
	for d.dec.More() {
		kt, err := d.next(path)
		if err != nil {
			return err
		}
		k, _ := kt.(string) // the tokenizer only yields string keys here
		p := legacyKey(path, k)
		if seen[k] {
			return legacyFieldErr(p, "duplicate key")
		}
		seen[k] = true
		if err := fn(k, p); err != nil {
			return err
		}
	}
	_, err := d.next(path) // '}'
	return err
}

// array reads an array whose '[' is tok, calling fn for each element index
// with its path; fn must consume the element. More than limit elements are
// rejected (limit < 0: no limit).
func (d *legacyDecoder) array(path string, tok json.Token, limit int, fn func(i int, p string) error) error {
	if del, ok := tok.(json.Delim); !ok || del != '[' {
		return legacyTypeErr(path, "an array", tok)
	}
	i := 0
	for ; d.dec.More(); i++ {
		if limit >= 0 && i >= limit {
			return legacyFieldErr(path, "has more than %d entries (the limit)", limit)
		}
		if err := fn(i, legacyIndex(path, i)); err != nil {
			return err
		}
	}
	_, err := d.next(path) // ']'
	return err
}

// clip shortens client text quoted in messages.
func legacyClip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// number reads a float64; null is reported through isNull and is an error
// unless nullable.
func (d *legacyDecoder) number(path string, nullable bool) (v float64, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return 0, false, err
	}
	if tok == nil && nullable {
		return 0, true, nil
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, false, legacyTypeErr(path, "a number", tok)
	}
	v, err = strconv.ParseFloat(string(n), 64)
	if err != nil {
		return 0, false, legacyFieldErr(path, "number %s is out of range for a 64-bit float", legacyClip(string(n)))
	}
	return v, false, nil
}

// integer reads an integer; an integral value written as a float ("5.0",
// "1e3") is accepted. null gives isNull. Ranges are checked by the caller.
func (d *legacyDecoder) integer(path string) (v int64, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return 0, false, err
	}
	if tok == nil {
		return 0, true, nil
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, false, legacyTypeErr(path, "an integer", tok)
	}
	v, perr := strconv.ParseInt(string(n), 10, 64)
	if perr != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, false, legacyFieldErr(path, "expected an integer, got %s", legacyClip(string(n)))
		}
		v = int64(f)
	}
	return v, false, nil
}

// seed reads an unsigned 64-bit integer; null gives isNull.
func (d *legacyDecoder) seed(path string) (v uint64, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return 0, false, err
	}
	if tok == nil {
		return 0, true, nil
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, false, legacyTypeErr(path, "an integer", tok)
	}
	v, perr := strconv.ParseUint(string(n), 10, 64)
	if perr != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) || f < 0 || f >= math.MaxUint64 {
			return 0, false, legacyFieldErr(path, "expected an integer in [0, 2^64-1], got %s", legacyClip(string(n)))
		}
		v = uint64(f)
	}
	return v, false, nil
}

// str reads a string; null gives isNull.
func (d *legacyDecoder) str(path string) (s string, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return "", false, err
	}
	if tok == nil {
		return "", true, nil
	}
	s, ok := tok.(string)
	if !ok {
		return "", false, legacyTypeErr(path, "a string", tok)
	}
	return s, false, nil
}

// boolean reads a boolean; null gives isNull.
func (d *legacyDecoder) boolean(path string) (b, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return false, false, err
	}
	if tok == nil {
		return false, true, nil
	}
	b, ok := tok.(bool)
	if !ok {
		return false, false, legacyTypeErr(path, "a boolean", tok)
	}
	return b, false, nil
}

// end checks that nothing but white space follows the document.
func (d *legacyDecoder) end() error {
	if _, err := d.dec.Token(); !errors.Is(err, io.EOF) {
		return legacyFieldErr("", "unexpected data after the JSON object")
	}
	return nil
}

// legacyUnknownKey rejects a key the schema does not have, listing those it does:
// a misspelt override ("temprature") must not be silently ignored.
func legacyUnknownKey(path string, known []string) error {
	return legacyFieldErr(path, "unknown field (known fields: %s)", strings.Join(known, ", "))
}

// legacyDecodePredict decodes a POST /v1/predict/single body. It checks the JSON
// types, keys and nulls; the rules that relate values (ordering, lengths,
// bounds) are in validate.go.
func legacyDecodePredict(body []byte, lim decodeLimits) (*predictRequest, error) {
	d := newLegacyDecoder(body)
	tok, err := d.next("")
	if err != nil {
		return nil, err
	}
	r := new(predictRequest)
	if err := d.object("", tok, func(k, p string) error { return d.predictField(r, k, p, lim) }); err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return r, nil
}

func (d *legacyDecoder) predictField(r *predictRequest, k, p string, lim decodeLimits) error {
	switch k {
	case "series_id":
		s, null, err := d.str(p)
		if err != nil || null {
			return err
		}
		r.SeriesID = &s
	case "model":
		s, _, err := d.str(p)
		r.Model = s // null or "" is the default model
		return err
	case "candles":
		r.hasCandles = true
		tok, err := d.next(p)
		if err != nil {
			return err
		}
		r.Candles = []preprocess.Candle{}
		return d.array(p, tok, lim.candles, func(_ int, ep string) error {
			c, err := d.candle(ep)
			r.Candles = append(r.Candles, c)
			return err
		})
	case "timestamps":
		r.hasTimestamps = true
		s, err := d.stamps(p, lim.candles)
		r.Timestamps = s
		return err
	case "prediction_timestamps":
		r.hasPrediction = true
		s, err := d.stamps(p, lim.steps)
		r.PredictionTimestamps = s
		return err
	case "overrides":
		return d.overrides(p, &r.Overrides)
	case "quantiles":
		tok, err := d.next(p)
		if err != nil || tok == nil {
			return err
		}
		r.Quantiles = []float64{}
		return d.array(p, tok, lim.quantiles, func(_ int, ep string) error {
			q, _, err := d.number(ep, false)
			r.Quantiles = append(r.Quantiles, q)
			return err
		})
	case "return_samples":
		b, _, err := d.boolean(p)
		r.ReturnSamples = b
		return err
	default:
		return legacyUnknownKey(p, predictKeys)
	}
	return nil
}

// candle decodes one {open, high, low, close, volume?, amount?} object.
// volume and amount may be left out (see preprocess.Fill) but not null: a
// null would otherwise have to be guessed as "missing" or "zero".
func (d *legacyDecoder) candle(path string) (preprocess.Candle, error) {
	var c preprocess.Candle
	tok, err := d.next(path)
	if err != nil {
		return c, err
	}
	var got [4]bool
	err = d.object(path, tok, func(k, p string) error {
		var dst *float64
		switch k {
		case "open":
			dst, got[0] = &c.Open, true
		case "high":
			dst, got[1] = &c.High, true
		case "low":
			dst, got[2] = &c.Low, true
		case "close":
			dst, got[3] = &c.Close, true
		case "volume", "amount":
			v, null, err := d.number(p, true)
			if err != nil {
				return err
			}
			if null {
				return legacyFieldErr(p, "must not be null; to mark %s as unknown, leave the key out of every candle", k)
			}
			if k == "volume" {
				c.Volume = &v
			} else {
				c.Amount = &v
			}
			return nil
		default:
			return legacyUnknownKey(p, candleKeys)
		}
		v, _, err := d.number(p, false)
		*dst = v
		return err
	})
	if err != nil {
		return c, err
	}
	for i, ok := range got {
		if !ok {
			return c, legacyFieldErr(legacyKey(path, candleKeys[i]), "is required")
		}
	}
	return c, nil
}

// stamps decodes an array of date-time strings.
func (d *legacyDecoder) stamps(path string, limit int) ([]stamp, error) {
	tok, err := d.next(path)
	if err != nil {
		return nil, err
	}
	out := []stamp{}
	err = d.array(path, tok, limit, func(_ int, p string) error {
		tok, err := d.next(p)
		if err != nil {
			return err
		}
		s, ok := tok.(string)
		if !ok {
			return legacyTypeErr(p, "a date-time string", tok)
		}
		st, err := parseStamp(s)
		if err != nil {
			return legacyFieldErr(p, "%q %v", legacyClip(s), err)
		}
		out = append(out, st)
		return nil
	})
	return out, err
}

// overrides decodes the overrides object; null or a left-out key means the
// default.
func (d *legacyDecoder) overrides(path string, o *overrides) error {
	tok, err := d.next(path)
	if err != nil || tok == nil {
		return err
	}
	return d.object(path, tok, func(k, p string) error {
		switch k {
		case "temperature", "top_p":
			v, null, err := d.number(p, true)
			if err != nil || null {
				return err
			}
			if k == "temperature" {
				o.Temperature = &v
			} else {
				o.TopP = &v
			}
		case "top_k", "sample_count", "pred_len":
			v, null, err := d.integer(p)
			if err != nil || null {
				return err
			}
			switch k {
			case "top_k":
				o.TopK = &v
			case "sample_count":
				o.SampleCount = &v
			default:
				o.PredLen = &v
			}
		case "seed":
			v, null, err := d.seed(p)
			if err != nil || null {
				return err
			}
			o.Seed = &v
		default:
			return legacyUnknownKey(p, overrideKeys)
		}
		return nil
	})
}

// legacyDecodeBatch is decodeBatch of batch.go as it was.
func legacyDecodeBatch(body []byte, lim decodeLimits, maxItems int) ([]*predictRequest, error) {
	d := newLegacyDecoder(body)
	tok, err := d.next("")
	if err != nil {
		return nil, err
	}
	var items []*predictRequest
	hasItems := false
	err = d.object("", tok, func(k, p string) error {
		if k != "items" {
			return legacyUnknownKey(p, batchKeys)
		}
		hasItems = true
		tok, err := d.next(p)
		if err != nil {
			return err
		}
		return d.array(p, tok, maxItems, func(_ int, ip string) error {
			tok, err := d.next(ip)
			if err != nil {
				return err
			}
			r := new(predictRequest)
			items = append(items, r)
			return d.object(ip, tok, func(k, p string) error { return d.predictField(r, k, p, lim) })
		})
	})
	if err != nil {
		return nil, err
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

// sameDecode checks that the decoder and the oracle (the encoding/json
// decoder it replaced, decode_legacy_test.go) agree on body, as a single
// request and wrapped as the second item of a batch: the same request, or
// errors with the same kind, field and message. The offset of "invalid JSON
// at byte N" is left out of the comparison (the oracle's is not always a
// position in the body; TestDecodeSyntaxOffsets pins the new one).
func sameDecode(t *testing.T, body []byte) {
	t.Helper()
	got, err := decodePredict(body, decodeLimitsForTest)
	want, wantErr := legacyDecodePredict(body, decodeLimitsForTest)
	sameResult(t, body, got, want, err, wantErr)

	batch := []byte(`{"items":[{},` + string(body) + `]}`)
	gotB, err := decodeBatch(batch, decodeLimitsForTest, 3)
	wantB, wantErr := legacyDecodeBatch(batch, decodeLimitsForTest, 3)
	sameResult(t, batch, gotB, wantB, err, wantErr)
}

var byteOffset = regexp.MustCompile(`invalid JSON at byte [0-9]+`)

func sameResult(t *testing.T, body []byte, got, want any, err, wantErr error) {
	t.Helper()
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("body %q:\n got error %v\nwant error %v", body, err, wantErr)
	}
	if err == nil {
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("body %q:\n got %+v\nwant %+v", body, got, want)
		}
		return
	}
	var fe, wfe *infer.FieldError
	if errors.As(err, &fe) != errors.As(wantErr, &wfe) || infer.KindOf(err) != infer.KindOf(wantErr) {
		t.Fatalf("body %q: error %#v (%v), want %#v (%v)", body, err, err, wantErr, wantErr)
	}
	norm := func(e error) string { return byteOffset.ReplaceAllString(e.Error(), "invalid JSON at byte N") }
	if norm(err) != norm(wantErr) {
		t.Fatalf("body %q:\n got error %q\nwant error %q", body, err, wantErr)
	}
}

// TestDecodeMatchesLegacy runs the differential check on the seeds and on
// mutations of them (a fixed random sequence; FuzzDecodeMatchesLegacy
// searches further).
func TestDecodeMatchesLegacy(t *testing.T) {
	seeds := decodeSeeds(t)
	r := rand.New(rand.NewPCG(1, 2))
	n := 0
	for _, s := range seeds {
		sameDecode(t, s)
		for range 200 {
			b := s
			for range 1 + r.IntN(3) {
				b = mutate(r, b)
			}
			sameDecode(t, b)
			n++
		}
	}
	t.Logf("%d seeds, %d mutations", len(seeds), n)
}

// FuzzDecodeMatchesLegacy: the decoder and the encoding/json decoder it
// replaced agree on every body (see sameDecode).
func FuzzDecodeMatchesLegacy(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) { sameDecode(t, body) })
}

// BenchmarkOverheadDecode400 is decoding alone, by the decoder and by the
// encoding/json one it replaced (decode_legacy_test.go), for a before and
// after within one run:
//
//	go test ./gateway -run '^$' -bench 'Overhead(Decode400|DecodeValidate)' -benchmem -count 6
func BenchmarkOverheadDecode400(b *testing.B) {
	body := overheadRequest(b)
	lim := NewOptions()
	limits := decodeLimits{candles: lim.MaxCandles, steps: lim.MaxPredictionSteps, quantiles: maxQuantiles}
	for _, dec := range []struct {
		name string
		fn   func([]byte, decodeLimits) (*predictRequest, error)
	}{{"scanner", decodePredict}, {"encoding-json", legacyDecodePredict}} {
		b.Run(dec.name, func(b *testing.B) {
			durations := make([]time.Duration, 0, b.N)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				req, err := dec.fn(body, limits)
				durations = append(durations, time.Since(start))
				if err != nil || len(req.Candles) != 400 {
					b.Fatalf("decode: %v", err)
				}
			}
			b.StopTimer()
			reportPercentiles(b, durations)
		})
	}
}
