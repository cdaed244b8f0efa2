package gateway

import (
	"errors"
	"strings"
	"time"
)

// stamp is one timestamp of a request, kept with how the caller wrote it so
// that the response can write prediction timestamps back the same way.
type stamp struct {
	// t is the instant in the caller's own offset (time.UTC for naive
	// timestamps and for "Z"); time features are taken from its wall clock.
	t time.Time
	// naive is true when the caller gave no offset.
	naive bool
	// zulu is true when the offset was written "Z" rather than "+00:00".
	zulu bool
}

// Accepted layouts. time.Parse also accepts a fractional second after the
// seconds in every one of them.
var (
	offsetLayouts = []string{"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04Z07:00"}
	naiveLayouts  = []string{"2006-01-02T15:04:05", "2006-01-02T15:04"}
)

// Output layouts: RFC 3339 with only as many fractional digits as needed.
const (
	naiveOut  = "2006-01-02T15:04:05.999999999"
	zuluOut   = "2006-01-02T15:04:05.999999999Z07:00"
	offsetOut = "2006-01-02T15:04:05.999999999-07:00"
)

var errStampSyntax = errors.New(`must be an ISO 8601 / RFC 3339 date-time such as ` +
	`"2024-06-18T11:15:00+08:00", "2024-06-18T03:15:00Z" or, without an offset, "2024-06-18T11:15:00"`)

// parseStamp parses an RFC 3339 date-time with an offset ("Z" or ±hh:mm), or
// a naive ISO 8601 date-time without one. The date and the time may be
// separated by "T", "t" or a space, the seconds may be left out or carry a
// fraction.
func parseStamp(s string) (stamp, error) {
	if len(s) < len("2006-01-02T15:04") || len(s) > 64 {
		return stamp{}, errStampSyntax
	}
	b := []byte(s)
	if c := b[10]; c == ' ' || c == 't' {
		b[10] = 'T'
	}
	if last := len(b) - 1; b[last] == 'z' {
		b[last] = 'Z'
	}
	norm := string(b)
	// The date uses '-' only before position 10, so a sign or a Z past it
	// is an offset.
	if strings.ContainsAny(norm[10:], "+-Z") {
		for _, layout := range offsetLayouts {
			t, err := time.Parse(layout, norm)
			if err != nil {
				continue
			}
			_, off := t.Zone()
			zulu := strings.HasSuffix(norm, "Z")
			if zulu {
				t = t.UTC()
			} else {
				t = t.In(time.FixedZone("", off))
			}
			return stamp{t: t, zulu: zulu}, nil
		}
		return stamp{}, errStampSyntax
	}
	for _, layout := range naiveLayouts {
		if t, err := time.Parse(layout, norm); err == nil {
			return stamp{t: t, naive: true}, nil
		}
	}
	return stamp{}, errStampSyntax
}

// String writes s in RFC 3339 with the caller's offset ("Z" if the caller
// wrote "Z"), or without an offset for a naive timestamp.
func (s stamp) String() string {
	switch {
	case s.naive:
		return s.t.Format(naiveOut)
	case s.zulu:
		return s.t.Format(zuluOut)
	}
	return s.t.Format(offsetOut)
}

// parseStampBytes is parseStamp for a timestamp read from the body. The
// usual forms (a 'T', 't' or space between date and time, seconds with up
// to 9 fractional digits or no seconds, "Z", "z", ±hh:mm or no offset) with
// values in range are parsed here without allocating; anything else goes
// through parseStamp, which gives the same result for these forms
// (FuzzParseStampBytes).
func parseStampBytes(b []byte) (stamp, error) {
	if s, ok := fastStamp(b); ok {
		return s, nil
	}
	return parseStamp(string(b))
}

// fastStamp parses the forms of parseStampBytes; ok is false for any other
// input, valid or not.
func fastStamp(b []byte) (s stamp, ok bool) {
	// yyyy-mm-ddThh:mm
	if len(b) < 16 || b[4] != '-' || b[7] != '-' || b[13] != ':' {
		return s, false
	}
	if c := b[10]; c != 'T' && c != 't' && c != ' ' {
		return s, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(month, year) || hour > 23 || minute > 59 {
		return s, false
	}
	rest := b[16:]
	sec, nsec := 0, 0
	if len(rest) >= 3 && rest[0] == ':' {
		v, ok := digits(rest[1:3])
		if !ok || v > 59 {
			return s, false
		}
		sec, rest = v, rest[3:]
		if len(rest) >= 2 && rest[0] == '.' {
			n := 1
			for n < len(rest) && n <= 9 && rest[n] >= '0' && rest[n] <= '9' {
				nsec = nsec*10 + int(rest[n]-'0')
				n++
			}
			if n == 1 || n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
				return s, false // no digit, or more than 9
			}
			for i := n; i <= 9; i++ {
				nsec *= 10
			}
			rest = rest[n:]
		}
	}
	loc := time.UTC
	switch {
	case len(rest) == 0:
		s.naive = true
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
		s.zulu = true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return s, false
		}
		off := (oh*60 + om) * 60
		if rest[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return s, false
	}
	s.t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	return s, true
}

// digits reads a run of ASCII digits.
func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// daysIn is the number of days of month in year (proleptic Gregorian).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
