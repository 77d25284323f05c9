// Package jsonwire is JSON on countersign's wire, without reflection:
// strict checks of request bodies by shape, byte-level scanning for the
// binders that surfaces write for their hottest bodies, and the appending
// encoders responses are written with. It knows no HTTP and no surface; a
// problem it finds is a Problem, which the HTTP layer turns into an answer.
package jsonwire

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
//  1. CheckSyntax: well-formed JSON, strings of valid UTF-8 without raw
//     control characters, at most MaxNesting levels, nothing after the value.
//  2. CheckShape: the document against the route's shape: objects hold only
//     known fields, each at most once, required fields present, every value
//     of the expected JSON type, integers in range, arrays within their item
//     limits.
//
// Both passes are iterative over the bytes with fixed scratch (recursion is
// bounded by MaxNesting) and do not allocate unless they report a problem.
// The validate body, the hottest, is the exception to the second pass:
// server/native checks its shape while binding it without sonic, and
// falls back to CheckShape only to word a refusal.

// MaxNesting is the deepest nesting of objects and arrays a body may have.
// The deepest real shape (validate: body, additionalData, sessionData, item,
// synonyms) has five levels.
const MaxNesting = 16

// Problem is what a failed check found. Its String is the snake_case code
// the HTTP layer answers it with (server/httpd maps each to a catalog entry),
// so the checks stay free of HTTP and of any one surface's wording.
type Problem uint8

// The problems a check reports.
const (
	NoProblem Problem = iota
	EmptyBody
	InvalidJSON
	InvalidUTF8
	NestingTooDeep
	TrailingData
	DuplicateField
	UnknownField
	MissingField
	WrongType
	InvalidField
	TooManyItems
	NumProblems
)

var problemCodes = [NumProblems]string{
	NoProblem:      "",
	EmptyBody:      "empty_body",
	InvalidJSON:    "invalid_json",
	InvalidUTF8:    "invalid_utf8",
	NestingTooDeep: "nesting_too_deep",
	TrailingData:   "trailing_data",
	DuplicateField: "duplicate_field",
	UnknownField:   "unknown_field",
	MissingField:   "missing_field",
	WrongType:      "wrong_type",
	InvalidField:   "invalid_field",
	TooManyItems:   "too_many_items",
}

func (p Problem) String() string { return problemCodes[p] }

// pathElem is one level of the position being checked: an object member
// (key set) or an array element (index >= 0).
type pathElem struct {
	key   []byte // the member name as sent (escaped form, without quotes)
	index int    // element index; -1 for objects
}

// Checker holds the state of one check and, after a failure, the problem.
// It lives in the pooled request context, and reuses its scratch from one
// check to the next.
type Checker struct {
	b     []byte
	depth int
	path  [MaxNesting + 1]pathElem

	Problem Problem  // what the last failed check found
	Msg     []byte   // the human sentence of the problem
	keybuf  [64]byte // an unescaped member name, for matching against a shape
}

func (c *Checker) reset(b []byte) {
	c.b = b
	c.depth = 0
	c.Problem = NoProblem
	c.Msg = c.Msg[:0]
}

// appendPath appends the dotted path of the current position, e.g.
// additionalData.sessionData[3].value, or "the request body" at the root.
func (c *Checker) appendPath(dst []byte) []byte {
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
func (c *Checker) failAt(e Problem, off int, what string) bool {
	c.Problem = e
	c.Msg = append(c.Msg[:0], what...)
	c.Msg = append(c.Msg, " at byte "...)
	c.Msg = strconv.AppendInt(c.Msg, int64(off), 10)
	if c.depth > 0 {
		c.Msg = append(c.Msg, " (in "...)
		c.Msg = c.appendPath(c.Msg)
		c.Msg = append(c.Msg, ')')
	}
	return false
}

// fail records a shape problem at the current path: "<path> <what>".
func (c *Checker) fail(e Problem, what string) bool {
	c.Problem = e
	c.Msg = c.appendPath(c.Msg[:0])
	c.Msg = append(c.Msg, ' ')
	c.Msg = append(c.Msg, what...)
	return false
}

func SkipWS(b []byte, i int) int {
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

// CheckSyntax reports whether b is exactly one well-formed JSON value within
// the nesting limit. On false, c.Problem and c.Msg describe the problem.
func (c *Checker) CheckSyntax(b []byte) bool {
	c.reset(b)
	i := SkipWS(b, 0)
	if i == len(b) {
		c.Problem = EmptyBody
		c.Msg = append(c.Msg[:0], "The request body is empty."...)
		return false
	}
	i, ok := c.syntaxValue(i)
	if !ok {
		return false
	}
	if i = SkipWS(b, i); i != len(b) {
		return c.failAt(TrailingData, i, "unexpected data after the JSON value")
	}
	return true
}

func (c *Checker) syntaxValue(i int) (int, bool) {
	b := c.b
	i = SkipWS(b, i)
	if i == len(b) {
		return i, c.failAt(InvalidJSON, i, "unexpected end of the body")
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
		return i, c.failAt(InvalidJSON, i, "unexpected character")
	}
}

func (c *Checker) literal(i int, lit string) (int, bool) {
	if len(c.b)-i < len(lit) || string(c.b[i:i+len(lit)]) != lit {
		return i, c.failAt(InvalidJSON, i, "invalid literal")
	}
	return i + len(lit), true
}

func (c *Checker) push() (*pathElem, bool) {
	if c.depth == MaxNesting {
		return nil, false
	}
	e := &c.path[c.depth]
	c.depth++
	e.key, e.index = nil, -1
	return e, true
}

func (c *Checker) syntaxObject(i int) (int, bool) {
	b := c.b
	e, ok := c.push()
	if !ok {
		c.Problem = NestingTooDeep
		c.Msg = append(c.Msg[:0], "the body nests deeper than 16 levels, at "...)
		c.Msg = c.appendPath(c.Msg)
		return i, false
	}
	i = SkipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		c.depth--
		return i + 1, true
	}
	for {
		e.key = nil
		i = SkipWS(b, i)
		if i == len(b) {
			return i, c.failAt(InvalidJSON, i, "unexpected end of the body")
		}
		if b[i] != '"' {
			return i, c.failAt(InvalidJSON, i, "expected a field name")
		}
		start := i + 1
		if i, ok = c.syntaxString(i); !ok {
			return i, false
		}
		e.key = b[start : i-1]
		i = SkipWS(b, i)
		if i == len(b) || b[i] != ':' {
			return i, c.failAt(InvalidJSON, i, "expected ':' after the field name")
		}
		if i, ok = c.syntaxValue(i + 1); !ok {
			return i, false
		}
		i = SkipWS(b, i)
		if i == len(b) {
			return i, c.failAt(InvalidJSON, i, "unexpected end of the body")
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			c.depth--
			return i + 1, true
		default:
			return i, c.failAt(InvalidJSON, i, "expected ',' or '}'")
		}
	}
}

func (c *Checker) syntaxArray(i int) (int, bool) {
	b := c.b
	e, ok := c.push()
	if !ok {
		c.Problem = NestingTooDeep
		c.Msg = append(c.Msg[:0], "the body nests deeper than 16 levels, at "...)
		c.Msg = c.appendPath(c.Msg)
		return i, false
	}
	i = SkipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		c.depth--
		return i + 1, true
	}
	for e.index = 0; ; e.index++ {
		if i, ok = c.syntaxValue(i); !ok {
			return i, false
		}
		i = SkipWS(b, i)
		if i == len(b) {
			return i, c.failAt(InvalidJSON, i, "unexpected end of the body")
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			c.depth--
			return i + 1, true
		default:
			return i, c.failAt(InvalidJSON, i, "expected ',' or ']'")
		}
	}
}

// syntaxString checks the string starting at b[i] == '"' and returns the
// offset after its closing quote.
func (c *Checker) syntaxString(i int) (int, bool) {
	b := c.b
	for i++; i < len(b); {
		ch := b[i]
		switch {
		case ch == '"':
			return i + 1, true
		case ch == '\\':
			if i+1 == len(b) {
				return i, c.failAt(InvalidJSON, i, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				u, ok := escapedRune(b, i)
				if !ok {
					return i, c.failAt(InvalidJSON, i, "invalid \\u escape in a string")
				}
				// A UTF-16 surrogate must come as a pair, high then low:
				// a lone half is no character, and decoders would each
				// turn it into something else (U+FFFD, an error).
				switch {
				case u >= 0xd800 && u < 0xdc00:
					if lo, ok := escapedRune(b, i+6); !ok || lo < 0xdc00 || lo >= 0xe000 {
						return i, c.failAt(InvalidUTF8, i, "a \\u escape of a lone UTF-16 surrogate (a high half without its low half) in a string")
					}
					i += 12
				case u >= 0xdc00 && u < 0xe000:
					return i, c.failAt(InvalidUTF8, i, "a \\u escape of a lone UTF-16 surrogate (a low half without its high half) in a string")
				default:
					i += 6
				}
			default:
				return i, c.failAt(InvalidJSON, i, "invalid escape in a string")
			}
		case ch < 0x20:
			return i, c.failAt(InvalidJSON, i, "unescaped control character in a string")
		case ch < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, c.failAt(InvalidUTF8, i, "invalid UTF-8 in a string")
			}
			i += size
		}
	}
	return i, c.failAt(InvalidJSON, i, "unterminated string")
}

func isDigit(ch byte) bool { return ch >= '0' && ch <= '9' }

// syntaxNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *Checker) syntaxNumber(i int) (int, bool) {
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
		return i, c.failAt(InvalidJSON, start, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || !isDigit(b[i]) {
			return i, c.failAt(InvalidJSON, start, "invalid number")
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
			return i, c.failAt(InvalidJSON, start, "invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, true
}

// Kind is the JSON type a shape expects.
type Kind uint8

const (
	KindObject Kind = iota + 1
	KindArray
	KindString
	KindBool
	KindInt    // an integer literal (no fraction, no exponent) within [-negMax, posMax]
	KindNumber // a number within [min, max]
	KindScalar // a string, number, boolean or null: one sessionData or field value
)

// Shape describes what a route accepts at one position of its body.
//
// A route declares the shape of its body once, as a package-level value;
// checking against it reads the shape and never changes it.
type Shape struct {
	Kind     Kind
	Nullable bool         // null is accepted (and binds as absent)
	Fields   []FieldShape // KindObject; at most 64
	Elem     *Shape       // KindArray
	MaxItems int          // KindArray
	PosMax   uint64       // KindInt
	NegMax   uint64       // KindInt: magnitude of the smallest value (0: no negatives)
	Min, Max float64      // KindNumber
	Desc     string       // "a string", "an integer from 0 to 64", ... for messages

	// Open (KindObject) skips members Fields does not name instead of
	// refusing them: the vendor-compatible surfaces take what real clients
	// send beside the fields they use (iVALT's requestFrom), while every
	// named field is still checked.
	Open bool
}

// FieldShape is one member an object shape accepts.
type FieldShape struct {
	Name     string
	Shape    *Shape
	Required bool
}

// The shapes of scalar fields, shared by every route's body.

var (
	ShapeString = &Shape{Kind: KindString, Desc: "a string"}
	ShapeBool   = &Shape{Kind: KindBool, Desc: "true or false"}
	ShapeScalar = &Shape{Kind: KindScalar, Desc: "a string, number, boolean or null"}
	ShapeInt64  = &Shape{Kind: KindInt, PosMax: math.MaxInt64, NegMax: 1 << 63, Desc: "an integer"}
	ShapeUint64 = &Shape{Kind: KindInt, PosMax: math.MaxUint64, Desc: "a non-negative integer"}
	ShapeUnit   = &Shape{Kind: KindNumber, Min: 0, Max: 1, Desc: "a number from 0 to 1"}
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

// CheckShape reports whether b (already through CheckSyntax) has shape s.
func (c *Checker) CheckShape(b []byte, s *Shape) bool {
	c.reset(b)
	_, ok := c.shapeValue(SkipWS(b, 0), s)
	return ok
}

func (c *Checker) wrongType(s *Shape, ch byte) bool {
	c.Problem = WrongType
	c.Msg = c.appendPath(c.Msg[:0])
	c.Msg = append(c.Msg, " must be "...)
	c.Msg = append(c.Msg, s.Desc...)
	c.Msg = append(c.Msg, ", not "...)
	c.Msg = append(c.Msg, jsonTypeName(ch)...)
	return false
}

func (c *Checker) shapeValue(i int, s *Shape) (int, bool) {
	b := c.b
	i = SkipWS(b, i)
	ch := b[i]
	if ch == 'n' && (s.Nullable || s.Kind == KindScalar) {
		return i + 4, true
	}
	switch s.Kind {
	case KindObject:
		if ch != '{' {
			return i, c.wrongType(s, ch)
		}
		return c.shapeObject(i, s)
	case KindArray:
		if ch != '[' {
			return i, c.wrongType(s, ch)
		}
		return c.shapeArray(i, s)
	case KindString:
		if ch != '"' {
			return i, c.wrongType(s, ch)
		}
		return SkipString(b, i), true
	case KindBool:
		switch ch {
		case 't':
			return i + 4, true
		case 'f':
			return i + 5, true
		}
		return i, c.wrongType(s, ch)
	case KindInt:
		if ch != '-' && !isDigit(ch) {
			return i, c.wrongType(s, ch)
		}
		return c.shapeInt(i, s)
	case KindNumber:
		if ch != '-' && !isDigit(ch) {
			return i, c.wrongType(s, ch)
		}
		end := SkipNumber(b, i)
		v, err := strconv.ParseFloat(BytesToString(b[i:end]), 64)
		if err != nil || v < s.Min || v > s.Max {
			return i, c.fail(InvalidField, "must be "+s.Desc)
		}
		return end, true
	case KindScalar:
		switch ch {
		case '{', '[':
			return i, c.wrongType(s, ch)
		case '"':
			return SkipString(b, i), true
		case 't':
			return i + 4, true
		case 'f':
			return i + 5, true
		}
		return SkipNumber(b, i), true
	}
	panic("jsonwire: unknown shape kind")
}

func (c *Checker) shapeInt(i int, s *Shape) (int, bool) {
	b := c.b
	end := SkipNumber(b, i)
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
		c.Problem = WrongType
		c.Msg = c.appendPath(c.Msg[:0])
		c.Msg = append(c.Msg, " must be "...)
		c.Msg = append(c.Msg, s.Desc...)
		c.Msg = append(c.Msg, ", not a fractional or exponent number"...)
		return i, false
	}
	limit := s.PosMax
	if neg {
		limit = s.NegMax
	}
	// A sign on an unsigned field is refused even on zero: "-0" is not
	// an unsigned integer to the decoder that binds it.
	if overflow || mag > limit || neg && s.NegMax == 0 {
		return i, c.fail(InvalidField, "must be "+s.Desc)
	}
	return end, true
}

func (c *Checker) shapeObject(i int, s *Shape) (int, bool) {
	b := c.b
	e, ok := c.push()
	if !ok { // unreachable after CheckSyntax; kept for safety
		return i, c.fail(NestingTooDeep, "nests too deeply")
	}
	var seen uint64
	i = SkipWS(b, i+1)
	if b[i] != '}' {
		for {
			i = SkipWS(b, i)
			end, escaped := ScanString(b, i)
			e.key = b[i+1 : end-1]
			f := s.field(c.UnescapeKey(e.key, escaped))
			if f < 0 && s.Open {
				// Well formed already (CheckSyntax): skipped unread.
				if i, ok = c.syntaxValue(SkipWS(b, end) + 1); !ok {
					return i, false
				}
				if i = SkipWS(b, i); b[i] == '}' {
					break
				}
				i++ // ','
				continue
			}
			if f < 0 {
				c.Problem = UnknownField
				c.Msg = append(c.Msg[:0], "unknown field "...)
				c.Msg = c.appendPath(c.Msg)
				return i, false
			}
			if seen&(1<<f) != 0 {
				return i, c.fail(DuplicateField, "appears twice")
			}
			seen |= 1 << f
			i = SkipWS(b, end) + 1 // ':'
			if i, ok = c.shapeValue(i, s.Fields[f].Shape); !ok {
				return i, false
			}
			i = SkipWS(b, i)
			if b[i] == '}' {
				break
			}
			i++ // ','
		}
	}
	for f := range s.Fields {
		if s.Fields[f].Required && seen&(1<<f) == 0 {
			e.key = []byte(s.Fields[f].Name)
			return i, c.fail(MissingField, "is required")
		}
	}
	c.depth--
	return i + 1, true
}

func (c *Checker) shapeArray(i int, s *Shape) (int, bool) {
	b := c.b
	e, ok := c.push()
	if !ok {
		return i, c.fail(NestingTooDeep, "nests too deeply")
	}
	i = SkipWS(b, i+1)
	if b[i] == ']' {
		c.depth--
		return i + 1, true
	}
	for e.index = 0; ; e.index++ {
		if e.index == s.MaxItems {
			c.depth--
			c.Problem = TooManyItems
			c.Msg = c.appendPath(c.Msg[:0])
			c.Msg = append(c.Msg, " has more than "...)
			c.Msg = strconv.AppendInt(c.Msg, int64(s.MaxItems), 10)
			c.Msg = append(c.Msg, " items"...)
			return i, false
		}
		if i, ok = c.shapeValue(i, s.Elem); !ok {
			return i, false
		}
		i = SkipWS(b, i)
		if b[i] == ']' {
			c.depth--
			return i + 1, true
		}
		i++ // ','
	}
}

// field returns the index of the field called name, or -1.
func (s *Shape) field(name []byte) int {
	for f := range s.Fields {
		if s.Fields[f].Name == string(name) {
			return f
		}
	}
	return -1
}

// UnescapeKey returns the member name raw (escaped form) decoded, in c.keybuf
// when it has escapes (escaped, as ScanString reports). A name too long for
// the buffer cannot be a field of any shape, so it is returned raw (and is
// then unknown).
func (c *Checker) UnescapeKey(raw []byte, escaped bool) []byte {
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

// ScanString is SkipString that also reports whether the string has an
// escape, so that its contents are not scanned again to find out.
func ScanString(b []byte, i int) (end int, escaped bool) {
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

// SkipString returns the offset after the string starting at b[i] == '"'
// (the body is known to be well formed).
func SkipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i++
		}
	}
}

// SkipNumber returns the offset after the number starting at b[i].
func SkipNumber(b []byte, i int) int {
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

// Release drops every reference into the last body checked (the path keeps
// member names), keeping the message buffer, so that a pooled checker does
// not keep a large body alive.
func (c *Checker) Release() {
	*c = Checker{Msg: c.Msg[:0]}
}
