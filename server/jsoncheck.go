package server

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/countersign/countersign/internal/jsonstr"
)

// Request bodies are checked in two byte-level passes before sonic binds them
// to a struct, so that every problem is answered with a 400 that names the
// field, and sonic only ever sees a document of the expected shape:
//
//  1. checkSyntax: well-formed JSON, strings of valid UTF-8 without raw
//     control characters, at most maxNesting levels, nothing after the value.
//  2. checkShape: the document against the route's shape: objects hold only
//     known fields, each at most once, required fields present, every value
//     of the expected JSON type, integers in range, arrays within their item
//     limits.
//
// Both passes are iterative over the bytes with fixed scratch (recursion is
// bounded by maxNesting) and do not allocate unless they report a problem.
// The validate body, the hottest, is the exception to the second pass:
// bindvalidate.go checks its shape while binding it without sonic, and
// falls back to checkShape only to word a refusal.

// maxNesting is the deepest nesting of objects and arrays a body may have.
// The deepest real shape (validate: body, additionalData, sessionData, item,
// synonyms) has five levels.
const maxNesting = 16

// pathElem is one level of the position being checked: an object member
// (key set) or an array element (index >= 0).
type pathElem struct {
	key   []byte // the member name as sent (escaped form, without quotes)
	index int    // element index; -1 for objects
}

// jsonChecker holds the state of one check and, after a failure, the problem.
// It lives in the pooled request context.
type jsonChecker struct {
	b     []byte
	depth int
	path  [maxNesting + 1]pathElem

	err    *apiError
	msg    []byte   // the human sentence of the problem
	keybuf [64]byte // an unescaped member name, for matching against a shape
}

func (c *jsonChecker) reset(b []byte) {
	c.b = b
	c.depth = 0
	c.err = nil
	c.msg = c.msg[:0]
}

// appendPath appends the dotted path of the current position, e.g.
// additionalData.sessionData[3].value, or "the request body" at the root.
func (c *jsonChecker) appendPath(dst []byte) []byte {
	return appendPath(dst, c.path[:c.depth])
}

func appendPath(dst []byte, path []pathElem) []byte {
	start := len(dst)
	for _, e := range path {
		if e.index >= 0 {
			dst = append(dst, '[')
			dst = strconv.AppendInt(dst, int64(e.index), 10)
			dst = append(dst, ']')
			continue
		}
		if e.key == nil {
			continue
		}
		if len(dst) > start {
			dst = append(dst, '.')
		}
		k := e.key
		if len(k) > 64 {
			k = k[:64]
		}
		dst = append(dst, k...)
	}
	if len(dst) == start {
		dst = append(dst, "the request body"...)
	}
	return dst
}

// failAt records a syntax-level problem found at byte offset off.
func (c *jsonChecker) failAt(e *apiError, off int, what string) bool {
	c.err = e
	c.msg = append(c.msg[:0], what...)
	c.msg = append(c.msg, " at byte "...)
	c.msg = strconv.AppendInt(c.msg, int64(off), 10)
	if c.depth > 0 {
		c.msg = append(c.msg, " (in "...)
		c.msg = c.appendPath(c.msg)
		c.msg = append(c.msg, ')')
	}
	return false
}

// fail records a shape problem at the current path: "<path> <what>".
func (c *jsonChecker) fail(e *apiError, what string) bool {
	c.err = e
	c.msg = c.appendPath(c.msg[:0])
	c.msg = append(c.msg, ' ')
	c.msg = append(c.msg, what...)
	return false
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// checkSyntax reports whether b is exactly one well-formed JSON value within
// the nesting limit. On false, c.err and c.msg describe the problem.
func (c *jsonChecker) checkSyntax(b []byte) bool {
	c.reset(b)
	i := skipWS(b, 0)
	if i == len(b) {
		c.err = errEmptyBody
		c.msg = append(c.msg[:0], errEmptyBody.message...)
		return false
	}
	i, ok := c.syntaxValue(i)
	if !ok {
		return false
	}
	if i = skipWS(b, i); i != len(b) {
		return c.failAt(errTrailingData, i, "unexpected data after the JSON value")
	}
	return true
}

func (c *jsonChecker) syntaxValue(i int) (int, bool) {
	b := c.b
	i = skipWS(b, i)
	if i == len(b) {
		return i, c.failAt(errInvalidJSON, i, "unexpected end of the body")
	}
	switch ch := b[i]; {
	case ch == '{':
		return c.syntaxObject(i)
	case ch == '[':
		return c.syntaxArray(i)
	case ch == '"':
		return c.syntaxString(i)
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.syntaxNumber(i)
	case ch == 't':
		return c.literal(i, "true")
	case ch == 'f':
		return c.literal(i, "false")
	case ch == 'n':
		return c.literal(i, "null")
	default:
		return i, c.failAt(errInvalidJSON, i, "unexpected character")
	}
}

func (c *jsonChecker) literal(i int, lit string) (int, bool) {
	if len(c.b)-i < len(lit) || string(c.b[i:i+len(lit)]) != lit {
		return i, c.failAt(errInvalidJSON, i, "invalid literal")
	}
	return i + len(lit), true
}

func (c *jsonChecker) push() (*pathElem, bool) {
	if c.depth == maxNesting {
		return nil, false
	}
	e := &c.path[c.depth]
	c.depth++
	e.key, e.index = nil, -1
	return e, true
}

func (c *jsonChecker) syntaxObject(i int) (int, bool) {
	b := c.b
	e, ok := c.push()
	if !ok {
		c.err = errNestingDepth
		c.msg = append(c.msg[:0], "the body nests deeper than 16 levels, at "...)
		c.msg = c.appendPath(c.msg)
		return i, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		c.depth--
		return i + 1, true
	}
	for {
		e.key = nil
		i = skipWS(b, i)
		if i == len(b) {
			return i, c.failAt(errInvalidJSON, i, "unexpected end of the body")
		}
		if b[i] != '"' {
			return i, c.failAt(errInvalidJSON, i, "expected a field name")
		}
		start := i + 1
		if i, ok = c.syntaxString(i); !ok {
			return i, false
		}
		e.key = b[start : i-1]
		i = skipWS(b, i)
		if i == len(b) || b[i] != ':' {
			return i, c.failAt(errInvalidJSON, i, "expected ':' after the field name")
		}
		if i, ok = c.syntaxValue(i + 1); !ok {
			return i, false
		}
		i = skipWS(b, i)
		if i == len(b) {
			return i, c.failAt(errInvalidJSON, i, "unexpected end of the body")
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			c.depth--
			return i + 1, true
		default:
			return i, c.failAt(errInvalidJSON, i, "expected ',' or '}'")
		}
	}
}

func (c *jsonChecker) syntaxArray(i int) (int, bool) {
	b := c.b
	e, ok := c.push()
	if !ok {
		c.err = errNestingDepth
		c.msg = append(c.msg[:0], "the body nests deeper than 16 levels, at "...)
		c.msg = c.appendPath(c.msg)
		return i, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		c.depth--
		return i + 1, true
	}
	for e.index = 0; ; e.index++ {
		if i, ok = c.syntaxValue(i); !ok {
			return i, false
		}
		i = skipWS(b, i)
		if i == len(b) {
			return i, c.failAt(errInvalidJSON, i, "unexpected end of the body")
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			c.depth--
			return i + 1, true
		default:
			return i, c.failAt(errInvalidJSON, i, "expected ',' or ']'")
		}
	}
}

// syntaxString checks the string starting at b[i] == '"' and returns the
// offset after its closing quote.
func (c *jsonChecker) syntaxString(i int) (int, bool) {
	b := c.b
	for i++; i < len(b); {
		ch := b[i]
		switch {
		case ch == '"':
			return i + 1, true
		case ch == '\\':
			if i+1 == len(b) {
				return i, c.failAt(errInvalidJSON, i, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				u, ok := escapedRune(b, i)
				if !ok {
					return i, c.failAt(errInvalidJSON, i, "invalid \\u escape in a string")
				}
				// A UTF-16 surrogate must come as a pair, high then low:
				// a lone half is no character, and decoders would each
				// turn it into something else (U+FFFD, an error).
				switch {
				case u >= 0xd800 && u < 0xdc00:
					if lo, ok := escapedRune(b, i+6); !ok || lo < 0xdc00 || lo >= 0xe000 {
						return i, c.failAt(errInvalidUTF8, i, "a \\u escape of a lone UTF-16 surrogate (a high half without its low half) in a string")
					}
					i += 12
				case u >= 0xdc00 && u < 0xe000:
					return i, c.failAt(errInvalidUTF8, i, "a \\u escape of a lone UTF-16 surrogate (a low half without its high half) in a string")
				default:
					i += 6
				}
			default:
				return i, c.failAt(errInvalidJSON, i, "invalid escape in a string")
			}
		case ch < 0x20:
			return i, c.failAt(errInvalidJSON, i, "unescaped control character in a string")
		case ch < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, c.failAt(errInvalidUTF8, i, "invalid UTF-8 in a string")
			}
			i += size
		}
	}
	return i, c.failAt(errInvalidJSON, i, "unterminated string")
}

func isDigit(ch byte) bool { return ch >= '0' && ch <= '9' }

// syntaxNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *jsonChecker) syntaxNumber(i int) (int, bool) {
	b := c.b
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, c.failAt(errInvalidJSON, start, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || !isDigit(b[i]) {
			return i, c.failAt(errInvalidJSON, start, "invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || !isDigit(b[i]) {
			return i, c.failAt(errInvalidJSON, start, "invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, true
}

// jsonKind is the JSON type a shape expects.
type jsonKind uint8

const (
	kindObject jsonKind = iota + 1
	kindArray
	kindString
	kindBool
	kindInt    // an integer literal (no fraction, no exponent) within [-negMax, posMax]
	kindNumber // a number within [min, max]
	kindScalar // a string, number, boolean or null: one sessionData or field value
)

// shape describes what a route accepts at one position of its body.
type shape struct {
	kind     jsonKind
	nullable bool         // null is accepted (and binds as absent)
	fields   []fieldShape // kindObject; at most 64
	elem     *shape       // kindArray
	maxItems int          // kindArray
	posMax   uint64       // kindInt
	negMax   uint64       // kindInt: magnitude of the smallest value (0: no negatives)
	min, max float64      // kindNumber
	desc     string       // "a string", "an integer from 0 to 64", ... for messages
}

type fieldShape struct {
	name     string
	shape    *shape
	required bool
}

var (
	shapeString = &shape{kind: kindString, desc: "a string"}
	shapeBool   = &shape{kind: kindBool, desc: "true or false"}
	shapeScalar = &shape{kind: kindScalar, desc: "a string, number, boolean or null"}
	shapeInt64  = &shape{kind: kindInt, posMax: math.MaxInt64, negMax: 1 << 63, desc: "an integer"}
	shapeUint64 = &shape{kind: kindInt, posMax: math.MaxUint64, desc: "a non-negative integer"}
	shapeUnit   = &shape{kind: kindNumber, min: 0, max: 1, desc: "a number from 0 to 1"}
)

func jsonTypeName(ch byte) string {
	switch ch {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// checkShape reports whether b (already through checkSyntax) has shape s.
func (c *jsonChecker) checkShape(b []byte, s *shape) bool {
	c.reset(b)
	_, ok := c.shapeValue(skipWS(b, 0), s)
	return ok
}

func (c *jsonChecker) wrongType(s *shape, ch byte) bool {
	c.err = errWrongType
	c.msg = c.appendPath(c.msg[:0])
	c.msg = append(c.msg, " must be "...)
	c.msg = append(c.msg, s.desc...)
	c.msg = append(c.msg, ", not "...)
	c.msg = append(c.msg, jsonTypeName(ch)...)
	return false
}

func (c *jsonChecker) shapeValue(i int, s *shape) (int, bool) {
	b := c.b
	i = skipWS(b, i)
	ch := b[i]
	if ch == 'n' && (s.nullable || s.kind == kindScalar) {
		return i + 4, true
	}
	switch s.kind {
	case kindObject:
		if ch != '{' {
			return i, c.wrongType(s, ch)
		}
		return c.shapeObject(i, s)
	case kindArray:
		if ch != '[' {
			return i, c.wrongType(s, ch)
		}
		return c.shapeArray(i, s)
	case kindString:
		if ch != '"' {
			return i, c.wrongType(s, ch)
		}
		return skipString(b, i), true
	case kindBool:
		switch ch {
		case 't':
			return i + 4, true
		case 'f':
			return i + 5, true
		}
		return i, c.wrongType(s, ch)
	case kindInt:
		if ch != '-' && !isDigit(ch) {
			return i, c.wrongType(s, ch)
		}
		return c.shapeInt(i, s)
	case kindNumber:
		if ch != '-' && !isDigit(ch) {
			return i, c.wrongType(s, ch)
		}
		end := skipNumber(b, i)
		v, err := strconv.ParseFloat(bytesToString(b[i:end]), 64)
		if err != nil || v < s.min || v > s.max {
			return i, c.fail(errInvalidField, "must be "+s.desc)
		}
		return end, true
	case kindScalar:
		switch ch {
		case '{', '[':
			return i, c.wrongType(s, ch)
		case '"':
			return skipString(b, i), true
		case 't':
			return i + 4, true
		case 'f':
			return i + 5, true
		}
		return skipNumber(b, i), true
	}
	panic("server: unknown shape kind")
}

func (c *jsonChecker) shapeInt(i int, s *shape) (int, bool) {
	b := c.b
	end := skipNumber(b, i)
	neg := b[i] == '-'
	j := i
	if neg {
		j++
	}
	var mag uint64
	overflow := false
	for ; j < end && isDigit(b[j]); j++ {
		d := uint64(b[j] - '0')
		if mag > (math.MaxUint64-d)/10 {
			overflow = true
		}
		mag = mag*10 + d
	}
	if j != end { // a fraction or an exponent
		c.err = errWrongType
		c.msg = c.appendPath(c.msg[:0])
		c.msg = append(c.msg, " must be "...)
		c.msg = append(c.msg, s.desc...)
		c.msg = append(c.msg, ", not a fractional or exponent number"...)
		return i, false
	}
	limit := s.posMax
	if neg {
		limit = s.negMax
	}
	// A sign on an unsigned field is refused even on zero: "-0" is not
	// an unsigned integer to the decoder that binds it.
	if overflow || mag > limit || neg && s.negMax == 0 {
		return i, c.fail(errInvalidField, "must be "+s.desc)
	}
	return end, true
}

func (c *jsonChecker) shapeObject(i int, s *shape) (int, bool) {
	b := c.b
	e, ok := c.push()
	if !ok { // unreachable after checkSyntax; kept for safety
		return i, c.fail(errNestingDepth, "nests too deeply")
	}
	var seen uint64
	i = skipWS(b, i+1)
	if b[i] != '}' {
		for {
			i = skipWS(b, i)
			end, escaped := scanString(b, i)
			e.key = b[i+1 : end-1]
			f := s.field(c.unescapeKey(e.key, escaped))
			if f < 0 {
				c.err = errUnknownField
				c.msg = append(c.msg[:0], "unknown field "...)
				c.msg = c.appendPath(c.msg)
				return i, false
			}
			if seen&(1<<f) != 0 {
				return i, c.fail(errDuplicateField, "appears twice")
			}
			seen |= 1 << f
			i = skipWS(b, end) + 1 // ':'
			if i, ok = c.shapeValue(i, s.fields[f].shape); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if b[i] == '}' {
				break
			}
			i++ // ','
		}
	}
	for f := range s.fields {
		if s.fields[f].required && seen&(1<<f) == 0 {
			e.key = []byte(s.fields[f].name)
			return i, c.fail(errMissingField, "is required")
		}
	}
	c.depth--
	return i + 1, true
}

func (c *jsonChecker) shapeArray(i int, s *shape) (int, bool) {
	b := c.b
	e, ok := c.push()
	if !ok {
		return i, c.fail(errNestingDepth, "nests too deeply")
	}
	i = skipWS(b, i+1)
	if b[i] == ']' {
		c.depth--
		return i + 1, true
	}
	for e.index = 0; ; e.index++ {
		if e.index == s.maxItems {
			c.depth--
			c.err = errTooManyItems
			c.msg = c.appendPath(c.msg[:0])
			c.msg = append(c.msg, " has more than "...)
			c.msg = strconv.AppendInt(c.msg, int64(s.maxItems), 10)
			c.msg = append(c.msg, " items"...)
			return i, false
		}
		if i, ok = c.shapeValue(i, s.elem); !ok {
			return i, false
		}
		i = skipWS(b, i)
		if b[i] == ']' {
			c.depth--
			return i + 1, true
		}
		i++ // ','
	}
}

// field returns the index of the field called name, or -1.
func (s *shape) field(name []byte) int {
	for f := range s.fields {
		if s.fields[f].name == string(name) {
			return f
		}
	}
	return -1
}

// unescapeKey returns the member name raw (escaped form) decoded, in c.keybuf
// when it has escapes (escaped, as scanString reports). A name too long for
// the buffer cannot be a field of any shape, so it is returned raw (and is
// then unknown).
func (c *jsonChecker) unescapeKey(raw []byte, escaped bool) []byte {
	if !escaped {
		return raw
	}
	out, ok := jsonstr.AppendMax(c.keybuf[:0], raw, len(c.keybuf))
	if !ok {
		return raw
	}
	return out
}

// escapedRune decodes the \u escape at b[i:]; false when b[i:] does not
// start with one (a backslash, 'u' and four hex digits).
func escapedRune(b []byte, i int) (rune, bool) {
	if len(b)-i < 6 || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	return jsonstr.Hex4(b[i+2:])
}

// scanString is skipString that also reports whether the string has an
// escape, so that its contents are not scanned again to find out.
func scanString(b []byte, i int) (end int, escaped bool) {
	for i++; ; i++ {
		switch b[i] {
		case '"':
			return i + 1, escaped
		case '\\':
			escaped = true
			i++
		}
	}
}

// skipString returns the offset after the string starting at b[i] == '"'
// (the body is known to be well formed).
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i++
		}
	}
}

// skipNumber returns the offset after the number starting at b[i].
func skipNumber(b []byte, i int) int {
	for i < len(b) {
		switch ch := b[i]; {
		case isDigit(ch), ch == '-', ch == '+', ch == '.', ch == 'e', ch == 'E':
			i++
		default:
			return i
		}
	}
	return i
}
