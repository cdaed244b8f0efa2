package gateway

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
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
		v, null, err := newDecoder([]byte(tc.in)).integer("x")
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
		v, _, err := newDecoder([]byte(tc.in)).seed("x")
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
		_, _, err := d.number("x", false)
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
