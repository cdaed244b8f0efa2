package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// The request decoder walks the JSON body token by token (encoding/json's
// Decoder.Token with UseNumber) instead of unmarshalling into structs, so
// that every error names its field as a JSON path ("candles[3].high"),
// including the errors encoding/json reports without one: numbers that
// overflow float64 (1e400), a NaN or Infinity literal, a wrong type inside
// an array, an unknown or duplicated key. It also tells a missing key from
// an explicit null, which the fill rules need.
//
// Decoding stops at the first error. The decoder keeps no state between
// requests and never panics on any input (see FuzzPredictSingle).

// decoder reads one JSON document.
type decoder struct {
	body []byte
	dec  *json.Decoder
}

func newDecoder(body []byte) *decoder {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	return &decoder{body: body, dec: d}
}

// fieldErr returns an invalid-input error for path; an empty path means the
// body as a whole.
func fieldErr(path, format string, args ...any) error {
	if path == "" {
		return infer.Errorf(infer.KindInvalid, "request body: "+format, args...)
	}
	return infer.Field(path, format, args...)
}

// next reads the next token; a syntax error is reported at path.
func (d *decoder) next(path string) (json.Token, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return nil, d.syntaxErr(path, err)
	}
	return tok, nil
}

// syntaxErr words a tokenizer error for the client.
func (d *decoder) syntaxErr(path string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if len(bytes.TrimSpace(d.body)) == 0 {
			return fieldErr("", "is empty; expected a JSON object")
		}
		return fieldErr(path, "unexpected end of JSON input")
	}
	// Point at the value the tokenizer choked on: skip separators after the
	// last good token.
	rest := d.body[min(int(d.dec.InputOffset()), len(d.body)):]
	rest = bytes.TrimLeft(rest, " \t\r\n,:")
	for _, lit := range []string{"NaN", "Infinity", "+Infinity", "-Infinity", "inf", "-inf", "+inf", "nan"} {
		if bytes.HasPrefix(rest, []byte(lit)) {
			return fieldErr(path, "%s is not a JSON number; send finite numbers only", lit)
		}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fieldErr(path, "invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return fieldErr(path, "invalid JSON: %s", err.Error())
}

// describe names the JSON type of a token for error messages.
func describe(tok json.Token) string {
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

func typeErr(path, want string, tok json.Token) error {
	return fieldErr(path, "expected %s, got %s", want, describe(tok))
}

// child paths.
func key(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// object reads an object whose '{' is tok, calling fn for each key with the
// key's path; fn must consume the value. Duplicate keys are rejected.
func (d *decoder) object(path string, tok json.Token, fn func(k, p string) error) error {
	if del, ok := tok.(json.Delim); !ok || del != '{' {
		return typeErr(path, "an object", tok)
	}
	seen := make(map[string]bool, 8)
	for d.dec.More() {
		kt, err := d.next(path)
		if err != nil {
			return err
		}
		k, _ := kt.(string) // the tokenizer only yields string keys here
		p := key(path, k)
		if seen[k] {
			return fieldErr(p, "duplicate key")
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
func (d *decoder) array(path string, tok json.Token, limit int, fn func(i int, p string) error) error {
	if del, ok := tok.(json.Delim); !ok || del != '[' {
		return typeErr(path, "an array", tok)
	}
	i := 0
	for ; d.dec.More(); i++ {
		if limit >= 0 && i >= limit {
			return fieldErr(path, "has more than %d entries (the limit)", limit)
		}
		if err := fn(i, index(path, i)); err != nil {
			return err
		}
	}
	_, err := d.next(path) // ']'
	return err
}

// clip shortens client text quoted in messages.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// number reads a float64; null is reported through isNull and is an error
// unless nullable.
func (d *decoder) number(path string, nullable bool) (v float64, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return 0, false, err
	}
	if tok == nil && nullable {
		return 0, true, nil
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, false, typeErr(path, "a number", tok)
	}
	v, err = strconv.ParseFloat(string(n), 64)
	if err != nil {
		return 0, false, fieldErr(path, "number %s is out of range for a 64-bit float", clip(string(n)))
	}
	return v, false, nil
}

// integer reads an integer; an integral value written as a float ("5.0",
// "1e3") is accepted. null gives isNull. Ranges are checked by the caller.
func (d *decoder) integer(path string) (v int64, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return 0, false, err
	}
	if tok == nil {
		return 0, true, nil
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, false, typeErr(path, "an integer", tok)
	}
	v, perr := strconv.ParseInt(string(n), 10, 64)
	if perr != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, false, fieldErr(path, "expected an integer, got %s", clip(string(n)))
		}
		v = int64(f)
	}
	return v, false, nil
}

// seed reads an unsigned 64-bit integer; null gives isNull.
func (d *decoder) seed(path string) (v uint64, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return 0, false, err
	}
	if tok == nil {
		return 0, true, nil
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, false, typeErr(path, "an integer", tok)
	}
	v, perr := strconv.ParseUint(string(n), 10, 64)
	if perr != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) || f < 0 || f >= math.MaxUint64 {
			return 0, false, fieldErr(path, "expected an integer in [0, 2^64-1], got %s", clip(string(n)))
		}
		v = uint64(f)
	}
	return v, false, nil
}

// str reads a string; null gives isNull.
func (d *decoder) str(path string) (s string, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return "", false, err
	}
	if tok == nil {
		return "", true, nil
	}
	s, ok := tok.(string)
	if !ok {
		return "", false, typeErr(path, "a string", tok)
	}
	return s, false, nil
}

// boolean reads a boolean; null gives isNull.
func (d *decoder) boolean(path string) (b, isNull bool, err error) {
	tok, err := d.next(path)
	if err != nil {
		return false, false, err
	}
	if tok == nil {
		return false, true, nil
	}
	b, ok := tok.(bool)
	if !ok {
		return false, false, typeErr(path, "a boolean", tok)
	}
	return b, false, nil
}

// end checks that nothing but white space follows the document.
func (d *decoder) end() error {
	if _, err := d.dec.Token(); !errors.Is(err, io.EOF) {
		return fieldErr("", "unexpected data after the JSON object")
	}
	return nil
}

// unknownKey rejects a key the schema does not have, listing those it does:
// a misspelt override ("temprature") must not be silently ignored.
func unknownKey(path string, known []string) error {
	return fieldErr(path, "unknown field (known fields: %s)", strings.Join(known, ", "))
}

// decodeLimits bound the arrays of one request while it is decoded, so that
// an oversized list is rejected before it is held in memory.
type decodeLimits struct {
	candles   int // candles and timestamps
	steps     int // prediction_timestamps
	quantiles int
}

// Known keys, listed in the error for an unknown one.
var (
	predictKeys  = []string{"series_id", "model", "candles", "timestamps", "prediction_timestamps", "overrides", "quantiles", "return_samples"}
	candleKeys   = []string{"open", "high", "low", "close", "volume", "amount"}
	overrideKeys = []string{"temperature", "top_k", "top_p", "sample_count", "seed", "pred_len"}
)

// decodePredict decodes a POST /v1/predict/single body. It checks the JSON
// types, keys and nulls; the rules that relate values (ordering, lengths,
// bounds) are in validate.go.
func decodePredict(body []byte, lim decodeLimits) (*predictRequest, error) {
	d := newDecoder(body)
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

func (d *decoder) predictField(r *predictRequest, k, p string, lim decodeLimits) error {
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
		return unknownKey(p, predictKeys)
	}
	return nil
}

// candle decodes one {open, high, low, close, volume?, amount?} object.
// volume and amount may be left out (see preprocess.Fill) but not null: a
// null would otherwise have to be guessed as "missing" or "zero".
func (d *decoder) candle(path string) (preprocess.Candle, error) {
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
				return fieldErr(p, "must not be null; to mark %s as unknown, leave the key out of every candle", k)
			}
			if k == "volume" {
				c.Volume = &v
			} else {
				c.Amount = &v
			}
			return nil
		default:
			return unknownKey(p, candleKeys)
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
			return c, fieldErr(key(path, candleKeys[i]), "is required")
		}
	}
	return c, nil
}

// stamps decodes an array of date-time strings.
func (d *decoder) stamps(path string, limit int) ([]stamp, error) {
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
			return typeErr(p, "a date-time string", tok)
		}
		st, err := parseStamp(s)
		if err != nil {
			return fieldErr(p, "%q %v", clip(s), err)
		}
		out = append(out, st)
		return nil
	})
	return out, err
}

// overrides decodes the overrides object; null or a left-out key means the
// default.
func (d *decoder) overrides(path string, o *overrides) error {
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
			return unknownKey(p, overrideKeys)
		}
		return nil
	})
}
