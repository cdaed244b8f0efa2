package gateway

import (
	"bytes"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// TestDecodeNumbers covers number forms that json.Marshal never writes.
func TestDecodeNumbers(t *testing.T) {
	ints := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"5", 5, true}, {"5.0", 5, true}, {"1e3", 1000, true}, {"1E2", 100, true}, {"-0", 0, true},
		{"-3", -3, true}, {"5.5", 0, false}, {"9223372036854775807", math.MaxInt64, true},
		{"9223372036854775808", 0, false}, {"1e19", 0, false}, {"1e400", 0, false},
	}
	for _, tc := range ints {
		d := newDecoder([]byte(tc.in))
		d.push(overrideList, okSeed) // any path
		v, null, err := d.integer()
		require.False(t, null)
		if !tc.ok {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, v, tc.in)
	}

	seeds := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"1e3", 1000, true}, {"18446744073709551615", math.MaxUint64, true},
		{"18446744073709551616", 0, false}, {"-1", 0, false}, {"0.5", 0, false}, {`"42"`, 0, false},
	}
	for _, tc := range seeds {
		d := newDecoder([]byte(tc.in))
		d.push(overrideList, okSeed) // any path
		v, _, err := d.seed()
		if !tc.ok {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, v, tc.in)
	}

	floats := []struct {
		in string
		ok bool
	}{
		{"1.5", true}, {"-0.0", true}, {"1e-400", true}, {"1.7976931348623157e308", true},
		{"1.8e308", false}, {"1e400", false}, {"NaN", false}, {"Infinity", false}, {"0x10", false}, {"01", false},
	}
	for _, tc := range floats {
		d := newDecoder([]byte(tc.in))
		d.push(overrideList, okSeed) // any path
		_, _, err := d.number(false)
		if err == nil {
			err = d.end()
		}
		require.Equal(t, tc.ok, err == nil, "%s: %v", tc.in, err)
	}
}

func TestAppendFloat32(t *testing.T) {
	cases := []struct {
		v    float32
		want string
	}{
		{11.27, "11.27"}, {0, "0"}, {float32(math.Copysign(0, -1)), "-0"}, {427161, "427161"},
		{1234567, "1234567"}, {1e-7, "1e-7"}, {1.5e-6, "0.0000015"}, {1e21, "1e+21"},
		{math.MaxFloat32, "3.4028235e+38"}, {-2.5, "-2.5"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, string(appendFloat32(nil, tc.v)), "%v", tc.v)
	}
	b, err := point{Timestamp: "2024-06-18T11:15:00", Open: 11.27, High: 11.28, Low: 11.26, Close: 11.27, Volume: 379,
		Amount: 427161}.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, `{"timestamp":"2024-06-18T11:15:00","open":11.27,"high":11.28,"low":11.26,"close":11.27,`+
		`"volume":379,"amount":427161}`, string(b))
}

// decodeLimitsForTest are small limits, so that the limit errors are met.
var decodeLimitsForTest = decodeLimits{candles: 6, steps: 4, quantiles: 3}

// decodeSeeds are the bodies the differential tests start from: the
// invalid cases, valid requests in several spellings, and edge cases of
// the JSON syntax.
func decodeSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, tc := range invalidCases {
		body := []byte(tc.raw)
		if tc.mutate != nil {
			m := baseRequest(4, 2)
			tc.mutate(m)
			body = mustJSON(t, m)
		}
		seeds = append(seeds, body)
	}
	m := baseRequest(3, 2)
	m["overrides"] = map[string]any{"temperature": 0.7, "top_k": 5, "top_p": 0.9, "sample_count": 2, "seed": 42, "pred_len": 2}
	m["quantiles"] = []any{0.1, 0.5}
	m["return_samples"] = true
	m["model"] = "kronos-fake"
	seeds = append(seeds, mustJSON(t, m), mustJSON(t, baseRequest(2, 1)))
	for _, s := range []string{
		` { "series_id" : "A\u00e9\"\\\/\b\f\n\r\t\ud83d\ude00\ud800x\udc00" , "model" : null , "candles" : [ { "open" : -0.0 , "high" : 1E+2 , "low" : 1e-400 , "close" : 0.5e1 } ] ,` +
			` "timestamps" : [ "2024-06-18 09:30" ] , "prediction_timestamps" : [ "2024-06-18t09:35:00.123456789" ] , "overrides" : null , "quantiles" : null , "return_samples" : null } `,
		`{"candles":[{"open":1,"high":1,"low":1,"close":1}],"timestamps":["2024-06-18T09:30:00+08:00"],` +
			`"prediction_timestamps":["2024-06-18T09:35:00.5-04:30","2024-02-29T09:35:00z","2024-06-18T09:35:00,5Z","2024-06-18T24:00:00Z"]}`,
		`{"overrides":{"top_k":1e3,"sample_count":5.0,"seed":18446744073709551615,"pred_len":-0,"temperature":null,"top_p":null}}`,
		`{"overrides":{"top_k":9223372036854775808}}`, `{"overrides":{"seed":1e20}}`, `{"overrides":{"top_k":-1e19}}`,
		`{"series_id":"\xff\xfe\xc3(\xed\xa0\x80"}`, `{"s\u0065ries_id":"x","series_id":"y"}`, `{"":1}`, `{"overrides":{"":1}}`,
		`{"quantiles":[0.1,0.2,0.3,0.4]}`, `{"quantiles":[1,]}`, `{"quantiles":[,1]}`, `{"quantiles":[1 2]}`, `{"quantiles":[1}`,
		`{"quantiles":{]}`, `{"quantiles":[}`, `{,}`, `{"model":"a",}`, `{"model" "a"}`, `{"model":"a" "b"}`, `{"model"::"a"}`,
		`{"model":]`, `{]`, `[]`, `]`, `:`, `,`, `"x"`, `1`, `-`, `-x`, `1.`, `1.x`, `1e`, `1e+`, `1ex`, `tru`, `trux`, `nul`,
		`nulx`, `fals`, `falsx`, `{"model":"\x01"}`, `{"model":"\q"}`, `{"model":"\u12g4"}`, `{"model":"\u12`, `{"model":"\`,
		`{"model":"abc`, "{\"model\":\"a\"}\v", "\v", " \t\r\n", "\xef\xbb\xbf{}", `{"model":"a"} x`, `{"model":"a"}}`,
		`{"candles":[{"open":NaN}]}`, `{"candles":[{"open":+Infinity}]}`, `{"candles":[{"open":-inf}]}`, `{"candles":[{"open":nan}]}`,
		`{"candles":[{"open":1,,"high":2}]}`, `{"candles":[1NaN]}`, `{"candles":[{"open":01}]}`, `{"candles":[{"open":1}{}]}`,
		`{"candles":[{"open":1,"high":2,"low":3,"close":4,"volume":null}]}`, `{"candles":[{"open":"1"}]}`, `{"candles":[[]]}`,
		`{"candles":[{"open":{}}]}`, `{"candles":[{"open":[]}]}`, `{"candles":[{"open":true}]}`, `{"timestamps":[1]}`,
		`{"timestamps":[null]}`, `{"timestamps":["\u0032024-06-18T09:30:00Z"]}`, `{"timestamps":["2024-06-18T09:30:00Z\u0000"]}`,
		`{"timestamps":["` + strings.Repeat("9", 50) + `"]}`, `{"return_samples":fals}`, `{"return_samples":true}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// mutate returns a variant of body: a byte replaced, inserted or removed,
// a cut, or a token swapped for another.
func mutate(r *rand.Rand, body []byte) []byte {
	const alphabet = "{}[]:,\"\\ \t\n-+.0123456789eEtrufalsnNIiyx\x00\x1f\x7f\xc3\xff"
	tokens := []string{"null", "true", "1e400", "-1e400", "NaN", "Infinity", "-0", "0.5", "1e3", "{}", "[]", `"x"`,
		`"2024-06-18T09:30:00Z"`, `"open"`, `"temprature"`, `{"open":1}`, `[1,2]`, `""`, "5.5", "18446744073709551616"}
	b := slices.Clone(body)
	if len(b) == 0 {
		return []byte(tokens[r.IntN(len(tokens))])
	}
	i := r.IntN(len(b))
	switch r.IntN(6) {
	case 0:
		b[i] = alphabet[r.IntN(len(alphabet))]
	case 1:
		b = slices.Insert(b, i, alphabet[r.IntN(len(alphabet))])
	case 2:
		b = slices.Delete(b, i, i+1)
	case 3:
		b = b[:i]
	case 4, 5: // replace the value after a ':' or a '['
		j := bytes.IndexAny(b[i:], ":[")
		if j < 0 {
			return b[:i]
		}
		start := i + j + 1
		end := start
		for end < len(b) && !strings.ContainsRune(",}]", rune(b[end])) {
			end++
		}
		b = slices.Replace(b, start, end, []byte(tokens[r.IntN(len(tokens))])...)
	}
	return b
}

// TestDecodeSyntaxOffsets pins where "invalid JSON at byte N" points: the
// offending byte, counted from 0.
func TestDecodeSyntaxOffsets(t *testing.T) {
	cases := []struct{ body, field, msg string }{
		{`{"candles" [] }`, "candles", "invalid JSON at byte 11: invalid character '[' after object key"},
		{`{"quantiles":[1.x]}`, "quantiles[0]", "invalid JSON at byte 16: invalid character 'x' after decimal point in numeric literal"},
		{`{"model":"a\qb"}`, "model", `invalid JSON at byte 12: invalid character 'q' in string escape code`},
		{`{"model":tx}`, "model", `invalid JSON at byte 10: invalid character 'x' in literal true (expecting 'r')`},
		{`{"overrides":{"seed":1 "x"}}`, "overrides", `invalid JSON at byte 23: invalid character '"' after object key:value pair`},
		{`{"quantiles":[1,]}`, "quantiles[1]", "invalid JSON at byte 16: invalid character ']' looking for beginning of value"},
		{`{"candles":[{"open":1é}]}`, "candles[0]", "invalid JSON at byte 21: invalid character 'Ã' after object key:value pair"},
		{`{"quantiles":[1 -Infinity]}`, "quantiles[1]", "-Infinity is not a JSON number; send finite numbers only"},
	}
	for _, tc := range cases {
		_, err := decodePredict([]byte(tc.body), decodeLimitsForTest)
		var fe *infer.FieldError
		require.ErrorAs(t, err, &fe, tc.body)
		require.Equal(t, tc.field, fe.Field, tc.body)
		require.Equal(t, tc.msg, fe.Reason, tc.body)
	}
}

// FuzzParseStampBytes: the allocation-free parse of the usual timestamp
// forms gives what parseStamp gives.
func FuzzParseStampBytes(f *testing.F) {
	for _, s := range []string{"2024-06-18T09:30:00Z", "2024-06-18 09:30", "2024-06-18t09:30:00.123456789z",
		"2024-06-18T09:30:00+08:00", "2024-06-18T09:30:00.5-04:30", "2024-02-29T00:00:00", "2023-02-29T00:00:00",
		"2024-06-18T23:59:59.9999999999Z", "2024-06-18T09:30:00-00:00", "0000-01-01T00:00", "2024-06-18T09:30:00+23:59"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseStampBytes(b)
		want, wantErr := parseStamp(string(b))
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, want %v", b, err, wantErr)
		}
		if err != nil {
			require.Equal(t, wantErr.Error(), err.Error())
			return
		}
		gn, go_ := got.t.Zone()
		wn, wo := want.t.Zone()
		if !got.t.Equal(want.t) || gn != wn || go_ != wo || got.naive != want.naive || got.zulu != want.zulu ||
			got.String() != want.String() || got.t.Location().String() != want.t.Location().String() {
			t.Fatalf("%q: got %v (%s %d naive=%v zulu=%v), want %v (%s %d naive=%v zulu=%v)", b,
				got, gn, go_, got.naive, got.zulu, want, wn, wo, want.naive, want.zulu)
		}
	})
}

// TestDecodeAllocations keeps the decoder free of allocations per value: a
// request of 400 candles with volume and amount takes a bounded number,
// whatever the count of candles.
func TestDecodeAllocations(t *testing.T) {
	lim := decodeLimits{candles: 1000, steps: 1000, quantiles: 32}
	count := func(n int) float64 {
		body := mustJSON(t, baseRequest(n, n))
		return testing.AllocsPerRun(20, func() {
			if _, err := decodePredict(body, lim); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := count(10), count(400)
	t.Logf("allocations: %.0f for 10 candles, %.0f for 400", small, large)
	require.Less(t, large, small+40, "allocations grow with the candles")
}

// TestParseFloat: the fast path of parseFloat agrees with strconv bit for
// bit, on the forms it takes and around them.
func TestParseFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	check := func(s string) {
		got, err := parseFloat([]byte(s))
		want, wantErr := strconv.ParseFloat(s, 64)
		if (err == nil) != (wantErr == nil) || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%q: got %v (%v), want %v (%v)", s, got, err, want, wantErr)
		}
	}
	for _, s := range []string{"0", "-0", "0.0", "-0.0", "1", "11.27", "427161", "0.000000000000001", "999999999999999",
		"9999999999999999", "0.1", "0.3", "2.675", "1.7976931348623157e308", "1e400", "-1e400", "1e-400", "123456789012345.6",
		"9007199254740993", "0.30000000000000004", "4.35", "1.005"} {
		check(s)
	}
	for range 200000 {
		var b []byte
		if r.IntN(4) == 0 {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, r.Uint64N(1<<uint(r.IntN(64))), 10)
		if r.IntN(2) == 0 {
			b = append(b, '.')
			for range 1 + r.IntN(17) {
				b = append(b, byte('0'+r.IntN(10)))
			}
		}
		check(string(b))
	}
}

// FuzzParseFloat: parseFloat and strconv.ParseFloat agree on every JSON
// number.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"11.27", "-0", "0.000123", "1e400", "123456789012345.6"} {
		f.Add(s)
	}
	jsonNumber := regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
	f.Fuzz(func(t *testing.T, s string) {
		if !jsonNumber.MatchString(s) {
			return
		}
		got, err := parseFloat([]byte(s))
		want, wantErr := strconv.ParseFloat(s, 64)
		if (err == nil) != (wantErr == nil) || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%q: got %v (%v), want %v (%v)", s, got, err, want, wantErr)
		}
	})
}
