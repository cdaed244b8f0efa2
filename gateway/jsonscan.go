package gateway

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// jsonscan.go is the JSON layer of the request decoder: a single-pass
// scanner over the body that reads one token at a time in the order of the
// schema (decode.go drives it), keeps the path of the value being read as a
// stack of keys and indexes, and formats that path only when it reports an
// error. Nothing is allocated per value: numbers are parsed from the body's
// bytes, keys are compared in place, and a string is copied only when the
// request keeps it.
//
// Every error matches, field and message, what encoding/json's
// Decoder.Token reported for the same body when the decoder was built on
// it (decode_legacy_test.go keeps that decoder as the oracle of the
// differential tests), with one exception: "invalid JSON at byte N" always
// gives the position of the offending byte in the body (counted from 0).

// kind is the JSON type of a token.
type kind uint8

const (
	kObject kind = iota + 1 // '{', consumed alone
	kArray                  // '[', consumed alone
	kString
	kNumber
	kTrue
	kFalse
	kNull
)

// describe names a kind for error messages.
func describe(k kind) string {
	switch k {
	case kObject:
		return "an object"
	case kArray:
		return "an array"
	case kString:
		return "a string"
	case kNumber:
		return "a number"
	case kTrue, kFalse:
		return "a boolean"
	case kNull:
		return "null"
	}
	return "an unexpected token"
}

// seg is one step of a path: element idx of an array when idx >= 0, else
// key keyLists[list][key]. It holds no pointer, so that moving along the
// path costs no write barrier.
type seg struct {
	idx       int
	list, key uint8
}

// maxDepth bounds the path: the deepest value of the schema is
// items[i].candles[j].open, 5 steps.
const maxDepth = 8

// decoder reads one JSON document. Nothing it returns points into the
// body, which fasthttp reuses once the handler returns: strings are copied.
type decoder struct {
	buf []byte
	pos int // next byte to read
	// sep is what must come before the next value: 0 (nothing), ':' after
	// an object key or ',' after an array element.
	sep byte

	// The last scalar token is buf[start:stop] (a string with its quotes);
	// plain is true for a string without escapes or non-ASCII bytes.
	start, stop int
	plain       bool

	// path of the value being read: path[:depth].
	path  [maxDepth]seg
	depth int

	// floats holds the values that requests point to (volume, amount), a
	// chunk at a time, so that they are not allocated one by one.
	floats []float64
}

func newDecoder(body []byte) *decoder { return &decoder{buf: body} }

// The path stack. The schema, not the input, sets how deep it goes.

func (d *decoder) push(list, key int) {
	d.path[d.depth] = seg{idx: -1, list: uint8(list), key: uint8(key)}
	d.depth++
}

func (d *decoder) pushIndex(i int) {
	d.path[d.depth] = seg{idx: i}
	d.depth++
}

func (d *decoder) pop() { d.depth-- }

// pathString formats the path: keys joined by ".", indexes in brackets
// ("items[2].candles[5].high"); "" is the body as a whole.
func (d *decoder) pathString() string {
	var b []byte
	for _, s := range d.path[:d.depth] {
		if s.idx >= 0 {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(s.idx), 10)
			b = append(b, ']')
			continue
		}
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, keyLists[s.list][s.key]...)
	}
	return string(b)
}

// errf reports an invalid-input error at the current path.
func (d *decoder) errf(format string, args ...any) error {
	return fieldErr(d.pathString(), format, args...)
}

// typeErr reports a value of kind k where want was expected.
func (d *decoder) typeErr(want string, k kind) error {
	return d.errf("expected %s, got %s", want, describe(k))
}

// Syntax errors.

// eofErr reports the end of the body in the middle of the document.
func (d *decoder) eofErr() error {
	if len(bytes.TrimSpace(d.buf)) == 0 {
		return fieldErr("", "is empty; expected a JSON object")
	}
	return d.errf("unexpected end of JSON input")
}

// syntaxErr reports the invalid byte at bad, with context saying what was
// expected there. from is where the token that holds it starts: a NaN or
// Infinity literal found there gets a message of its own.
func (d *decoder) syntaxErr(from, bad int, context string) error {
	rest := bytes.TrimLeft(d.buf[from:], " \t\r\n,:")
	for _, lit := range []string{"NaN", "Infinity", "+Infinity", "-Infinity", "inf", "-inf", "+inf", "nan"} {
		if bytes.HasPrefix(rest, []byte(lit)) {
			return d.errf("%s is not a JSON number; send finite numbers only", lit)
		}
	}
	return d.errf("invalid JSON at byte %d: invalid character %s%s", bad, quoteChar(d.buf[bad]), context)
}

// tokenErr reports an unexpected byte where a token starts.
func (d *decoder) tokenErr(context string) error { return d.syntaxErr(d.pos, d.pos, context) }

// quoteChar quotes c for a syntax error message, as encoding/json does.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// Tokens.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// peek skips white space and returns the next byte; ok is false at the end
// of the body.
func (d *decoder) peek() (c byte, ok bool) {
	for d.pos < len(d.buf) {
		c = d.buf[d.pos]
		if c > ' ' || !isSpace(c) {
			return c, true
		}
		d.pos++
	}
	return 0, false
}

// token reads the next value at the current path, after its separator
// (d.sep), and returns its kind. '{' and '[' are consumed alone (see
// nextKey and nextElem); a scalar is read whole into d.start:d.stop.
func (d *decoder) token() (kind, error) {
	c, ok := d.peek()
	if !ok {
		return 0, d.eofErr()
	}
	if sep := d.sep; sep != 0 {
		if c != sep {
			if sep == ':' {
				return 0, d.tokenErr(" after object key")
			}
			return 0, d.tokenErr(" after array element")
		}
		d.pos++
		d.sep = 0
		if c, ok = d.peek(); !ok {
			return 0, d.eofErr()
		}
	}
	switch c {
	case '{':
		d.pos++
		return kObject, nil
	case '[':
		d.pos++
		return kArray, nil
	case ']', '}', ':', ',':
		return 0, d.tokenErr(" looking for beginning of value")
	}
	return d.scalar(c)
}

// scalar reads the string, number or literal starting with c at d.pos.
func (d *decoder) scalar(c byte) (kind, error) {
	d.start = d.pos
	switch {
	case c == '"':
		return kString, d.str()
	case c == '-' || c >= '0' && c <= '9':
		return kNumber, d.num()
	case c == 't':
		return kTrue, d.literal("true")
	case c == 'f':
		return kFalse, d.literal("false")
	case c == 'n':
		return kNull, d.literal("null")
	}
	return 0, d.syntaxErr(d.start, d.pos, " looking for beginning of value")
}

// literal reads true, false or null.
func (d *decoder) literal(lit string) error {
	for i := 1; i < len(lit); i++ {
		p := d.pos + i
		if p >= len(d.buf) {
			return d.eofErr()
		}
		if d.buf[p] != lit[i] {
			return d.syntaxErr(d.start, p, " in literal "+lit+" (expecting "+quoteChar(lit[i])+")")
		}
	}
	d.pos += len(lit)
	d.stop = d.pos
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// num reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. It
// ends before the first byte that cannot continue it.
func (d *decoder) num() error {
	b, p := d.buf, d.pos
	if b[p] == '-' {
		p++
		if p >= len(b) {
			return d.eofErr()
		}
		if !isDigit(b[p]) {
			return d.syntaxErr(d.start, p, " in numeric literal")
		}
	}
	if b[p] == '0' {
		p++
	} else {
		for p < len(b) && isDigit(b[p]) {
			p++
		}
	}
	if p < len(b) && b[p] == '.' {
		p++
		if p >= len(b) {
			return d.eofErr()
		}
		if !isDigit(b[p]) {
			return d.syntaxErr(d.start, p, " after decimal point in numeric literal")
		}
		for p < len(b) && isDigit(b[p]) {
			p++
		}
	}
	if p < len(b) && (b[p] == 'e' || b[p] == 'E') {
		p++
		if p < len(b) && (b[p] == '+' || b[p] == '-') {
			p++
		}
		if p >= len(b) {
			return d.eofErr()
		}
		if !isDigit(b[p]) {
			return d.syntaxErr(d.start, p, " in exponent of numeric literal")
		}
		for p < len(b) && isDigit(b[p]) {
			p++
		}
	}
	d.pos, d.stop = p, p
	return nil
}

// str reads a string and notes whether it is plain.
func (d *decoder) str() error {
	b := d.buf
	plain := true
	for p := d.pos + 1; p < len(b); p++ {
		switch c := b[p]; {
		case c == '"':
			d.pos, d.stop, d.plain = p+1, p+1, plain
			return nil
		case c == '\\':
			plain = false
			p++
			if p >= len(b) {
				return d.eofErr()
			}
			switch b[p] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for range 4 {
					p++
					if p >= len(b) {
						return d.eofErr()
					}
					if !isHex(b[p]) {
						return d.syntaxErr(d.start, p, ` in \u hexadecimal character escape`)
					}
				}
			default:
				return d.syntaxErr(d.start, p, " in string escape code")
			}
		case c < 0x20:
			return d.syntaxErr(d.start, p, " in string literal")
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return d.eofErr()
}

func isHex(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

// raw is the last scalar token as read.
func (d *decoder) raw() []byte { return d.buf[d.start:d.stop] }

// text is the last string token, decoded: escapes are resolved, and a byte
// that is not UTF-8 or an unpaired surrogate escape becomes U+FFFD.
func (d *decoder) text() string {
	s := d.buf[d.start+1 : d.stop-1]
	if d.plain {
		return string(s)
	}
	return string(unquote(s))
}

// unquote decodes the inside of a string that str accepted.
func unquote(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			e := s[i+1]
			i += 2
			switch e {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(s[i:])
				i += 4
				if r >= 0xd800 && r < 0xdc00 && i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := hex4(s[i+2:]); r2 >= 0xdc00 && r2 < 0xe000 {
						r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
						i += 6
					}
				}
				if r >= 0xd800 && r < 0xe000 {
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default: // '"', '\\', '/'
				out = append(out, e)
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, s[i:i+n]...)
			}
			i += n
		}
	}
	return out
}

// hex4 reads the four hex digits str checked.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// Containers.

// nextKey advances in the object whose '{' was read last at the current
// path, n keys in. At the closing '}' it consumes it and returns -1.
// Otherwise it reads the next key, which must be one of keyLists[list] and
// not one in seen (a bit per index), pushes it on the path and returns its
// index; the caller reads the value and pops the key.
func (d *decoder) nextKey(n, list int, seen *uint32) (int, error) {
	keys := keyLists[list]
	c, ok := d.peek()
	switch {
	case !ok:
		return -1, d.eofErr()
	case c == '}':
		d.pos++
		return -1, nil
	case c == ']':
		if n == 0 {
			return -1, d.tokenErr("")
		}
		return -1, d.tokenErr(" after object key:value pair")
	}
	if n > 0 {
		if c != ',' {
			return -1, d.tokenErr(" after object key:value pair")
		}
		d.pos++
		if c, ok = d.peek(); !ok {
			return -1, d.eofErr()
		}
		if c != '"' {
			return -1, d.tokenErr(" looking for beginning of object key string")
		}
	} else if c != '"' {
		return -1, d.tokenErr("")
	}
	d.start = d.pos
	if err := d.str(); err != nil {
		return -1, err
	}
	i := d.lookup(keys)
	if i < 0 {
		return -1, fieldErr(key(d.pathString(), d.text()), "unknown field (known fields: %s)", strings.Join(keys, ", "))
	}
	d.push(list, i)
	if *seen&(1<<i) != 0 {
		return -1, d.errf("duplicate key")
	}
	*seen |= 1 << i
	d.sep = ':'
	return i, nil
}

// lookup finds the last string token, decoded, in keys; -1 if it is not
// there.
func (d *decoder) lookup(keys []string) int {
	if d.plain {
		k := d.buf[d.start+1 : d.stop-1]
		for i, known := range keys {
			if len(k) == len(known) && len(k) > 0 && k[0] == known[0] && string(k) == known {
				return i
			}
		}
		return -1
	}
	k := d.text()
	for i, known := range keys {
		if k == known {
			return i
		}
	}
	return -1
}

// nextElem advances in the array whose '[' was read last at the current
// path, at index i. At the closing ']' it consumes it and returns false.
// Otherwise it pushes the index on the path and returns true; the caller
// reads the element and pops the index. An element past limit (limit >= 0)
// is rejected before it is read.
func (d *decoder) nextElem(i, limit int) (bool, error) {
	c, ok := d.peek()
	switch {
	case !ok:
		return false, d.eofErr()
	case c == ']':
		d.pos++
		return false, nil
	case c == '}':
		if i == 0 {
			return false, d.tokenErr(" looking for beginning of value")
		}
		return false, d.tokenErr(" after array element")
	}
	if limit >= 0 && i >= limit {
		return false, d.errf("has more than %d entries (the limit)", limit)
	}
	d.pushIndex(i)
	if i > 0 {
		d.sep = ','
	}
	return true, nil
}

// end checks that nothing but white space follows the document.
func (d *decoder) end() error {
	if _, ok := d.peek(); ok {
		return fieldErr("", "unexpected data after the JSON object")
	}
	return nil
}

// pow10 are the powers of ten that a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat parses a number token as strconv.ParseFloat does, bit for bit.
// A plain decimal of at most 15 digits ("11.27", "-379", "0.000123")
// needs one exact division: its digits and the power of ten are exact
// float64 values, and one IEEE operation rounds correctly. Anything else
// goes to strconv.
func parseFloat(b []byte) (float64, error) {
	i, neg := 0, false
	if len(b) > 0 && b[0] == '-' {
		i, neg = 1, true
	}
	var m uint64
	n, frac := 0, 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		m = m*10 + uint64(b[i]-'0')
		n++
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && isDigit(b[i]); i++ {
			m = m*10 + uint64(b[i]-'0')
			n++
			frac++
		}
	}
	if i != len(b) || n == 0 || n > 15 {
		return strconv.ParseFloat(string(b), 64)
	}
	f := float64(m) / pow10[frac]
	if neg {
		f = -f
	}
	return f, nil
}
