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
