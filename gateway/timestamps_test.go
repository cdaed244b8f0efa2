package gateway

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseStamp(t *testing.T) {
	cases := []struct {
		in          string
		out         string // String(); "" means in
		naive       bool
		hour, wkday int // wall clock of the caller: hour and weekday (Monday = 0)
	}{
		{"2024-06-18T11:15:00+08:00", "", false, 11, 1},
		{"2024-06-18T03:15:00Z", "", false, 3, 1},
		{"2024-06-18T03:15:00z", "2024-06-18T03:15:00Z", false, 3, 1},
		{"2024-06-18T03:15:00+00:00", "", false, 3, 1},
		{"2024-06-16T23:30:00-05:00", "", false, 23, 6},
		{"2024-06-18T11:15:00.250+05:30", "2024-06-18T11:15:00.25+05:30", false, 11, 1},
		{"2024-06-18 11:15:00+08:00", "2024-06-18T11:15:00+08:00", false, 11, 1},
		{"2024-06-18T11:15+08:00", "2024-06-18T11:15:00+08:00", false, 11, 1},
		{"2024-06-18T11:15:00", "", true, 11, 1},
		{"2024-06-18 11:15:00", "2024-06-18T11:15:00", true, 11, 1},
		{"2024-06-18t11:15:00.5", "2024-06-18T11:15:00.5", true, 11, 1},
		{"2024-06-18T11:15", "2024-06-18T11:15:00", true, 11, 1},
	}
	for _, tc := range cases {
		s, err := parseStamp(tc.in)
		require.NoError(t, err, tc.in)
		want := tc.out
		if want == "" {
			want = tc.in
		}
		require.Equal(t, want, s.String(), tc.in)
		require.Equal(t, tc.naive, s.naive, tc.in)
		require.Equal(t, tc.hour, s.t.Hour(), tc.in)
		require.Equal(t, tc.wkday, (int(s.t.Weekday())+6)%7, tc.in)
	}

	a, _ := parseStamp("2024-06-18T11:15:00+08:00")
	b, _ := parseStamp("2024-06-18T03:15:00Z")
	require.True(t, a.t.Equal(b.t), "the same instant in two offsets")

	for _, bad := range []string{"", "2024-06-18", "yesterday", "2024-06-18T25:00:00", "2024-06-31T10:00:00",
		"2024-06-18T10:00:60Z", "2024-06-18T10:00:00+0800", "2024-06-18T10:00:00+25:00", "18/06/2024 10:00",
		"2024-06-18T10:00:00 +08:00", "1718703000", "2024-06-18T10:00:00Zjunk"} {
		_, err := parseStamp(bad)
		require.Error(t, err, "%q", bad)
	}
}

// FuzzParseStamp checks that parseStamp never panics and that what it
// accepts prints back to a string it parses to the same instant and kind.
func FuzzParseStamp(f *testing.F) {
	for _, s := range []string{"2024-06-18T11:15:00+08:00", "2024-06-18 11:15:00", "2024-06-18T03:15:00.123456789Z",
		"2024-06-18T11:15", "0000-01-01T00:00:00-23:59", "9999-12-31t23:59:59z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := parseStamp(in)
		if err != nil {
			return
		}
		back, err := parseStamp(s.String())
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", in, s.String(), err)
		}
		if !back.t.Equal(s.t) || back.naive != s.naive || back.zulu != s.zulu || back.String() != s.String() {
			t.Fatalf("%q -> %q -> %q", in, s.String(), back.String())
		}
		if _, off := s.t.Zone(); off != 0 && (s.naive || s.zulu) {
			t.Fatalf("%q: naive or Z stamp with offset %d", in, off)
		}
		_ = s.t.Add(time.Second)
	})
}
