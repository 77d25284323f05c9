package match

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/countersign/countersign/internal/jsonstr"
)

// Kind is the type a raw value canonicalises to. It is decided by the value, not by
// its JSON type: the string "35.00" is a number and the string "TRUE" a boolean, so a
// client SDK that collects everything as text still matches a backend that sends
// numbers.
type Kind uint8

// The kinds a value canonicalises to.
const (
	// KindNull is JSON null. It never matches anything, not even another null:
	// a value nobody entered cannot confirm anything.
	KindNull Kind = iota
	// KindBool is true or false, from JSON literals or from the strings "true" and
	// "false" in any case with surrounding whitespace.
	KindBool
	// KindNumber is an exact decimal, from a JSON number or from a string holding a
	// decimal literal without leading zeros.
	KindNumber
	// KindText is every other string: NFC, trimmed, whitespace runs collapsed and
	// case-folded.
	KindText
)

// String returns the kind's name as fixtures and logs spell it.
func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindBool:
		return "boolean"
	case KindNumber:
		return "number"
	case KindText:
		return "text"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Tags open every canonical form so that values of different kinds can never have
// equal bytes ("true" the text can not collide with true the boolean). They are
// lower-case letters so a canonical form printed in a fixture reads as kind + value.
const (
	tagNull   = 'n'
	tagBool   = 'b'
	tagNumber = 'd' // decimal
	tagText   = 't'
)

// expSaturate caps the accumulated exponent of a literal. Any exponent that reaches
// it is far outside MaxExponent even after the at most MaxDigits of adjustment that
// normalisation adds, and capping keeps the arithmetic inside 32 bits.
const expSaturate = 100_000_000

// AppendCanonical appends the canonical form of raw (one JSON token: string, number,
// true, false or null, surrounding whitespace allowed) to dst. Two values match exactly
// when both are not null and their canonical bytes are equal. The first byte of the
// canonical form is the kind tag. Zero allocations when dst has capacity.
//
// The forms, after the tag: null is empty; a boolean is "true" or "false"; a number is
// 0, or a sign, the significant digits with a point after the first, 'e' and the
// exponent of that scientific form (35.00 is "+3.5e1"); text is the NFC form, trimmed,
// with every whitespace run replaced by one space and every rune replaced by the
// smallest rune of its simple case-folding orbit (so ASCII letters become upper case),
// which makes byte equality the same as strings.EqualFold of the normalised text.
//
// A string or a number longer than MaxValueBytes is ErrValueTooLong; a number with
// more than MaxDigits digits ErrNumberTooLong; a number whose normalised exponent is
// beyond MaxExponent ErrExponentRange (zero has no exponent and is always in range).
// A token starting with '{' or '[' is ErrNotScalar, well formed or not. Every other
// malformed token, bad escape, lone surrogate, raw control character or invalid UTF-8
// is ErrInvalidToken. On error dst is returned unchanged.
//
// The spare capacity used while working can exceed the result: an escaped string is
// unescaped past the end of dst, a string that is not NFC is normalised past that,
// then the result is moved into place. 8×len(raw)+16 bytes is always enough; ASCII or
// Latin text without escapes needs only its own length.
func AppendCanonical(dst, raw []byte) ([]byte, Kind, error) {
	return appendCanonical(dst, raw, nil)
}

// appendCanonical is AppendCanonical with the NFC iterator of the caller's scratch,
// or nil to borrow one.
func appendCanonical(dst, raw []byte, it *norm.Iter) ([]byte, Kind, error) {
	tok := trimJSONSpace(raw)
	if len(tok) > MaxValueBytes {
		return dst, KindNull, ErrValueTooLong
	}
	if len(tok) == 0 {
		return dst, KindNull, ErrInvalidToken
	}
	switch c := tok[0]; {
	case c == '"':
		return appendStringToken(dst, tok, it)
	case c == '-' || isDigit(c):
		d, ok := parseDecimal(tok)
		if !ok {
			return dst, KindNull, ErrInvalidToken
		}
		return d.appendCanonical(dst)
	case c == '{' || c == '[':
		return dst, KindNull, ErrNotScalar
	case string(tok) == "true":
		return append(dst, tagBool, 't', 'r', 'u', 'e'), KindBool, nil
	case string(tok) == "false":
		return append(dst, tagBool, 'f', 'a', 'l', 's', 'e'), KindBool, nil
	case string(tok) == "null":
		return append(dst, tagNull), KindNull, nil
	}
	return dst, KindNull, ErrInvalidToken
}

// Equal reports whether two canonical forms (from AppendCanonical) match: both are
// not null and their bytes are equal.
func Equal(a, b []byte) bool {
	return len(a) > 0 && a[0] != tagNull && bytes.Equal(a, b)
}

// ValidateValue checks that raw is a value Match can compare: a scalar JSON token
// within the limits. It returns the error AppendCanonical would. The server calls it
// when events arrive so that a bad value is refused at ingestion, not at validate.
func ValidateValue(raw []byte) error {
	p := validateBufs.Get().(*[]byte)
	var err error
	*p, _, err = AppendCanonical((*p)[:0], raw)
	validateBufs.Put(p)
	return err
}

// validateBufs holds ValidateValue's scratch. A stack array would escape anyway (the
// NFC iterator keeps a reference to its input), so a pool keeps ingestion
// allocation-free.
var validateBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// trimJSONSpace removes the whitespace JSON allows around a token.
func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isJSONSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// asciiSpace is unicode.IsSpace for the ASCII range, as a table for the fast paths.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// strPlain marks the bytes a JSON string body may hold as they are and that need no
// further look: printable ASCII other than the quote and the backslash.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// textClass is what a scan learned about a string, cheapest to process first.
type textClass uint8

const (
	// classASCII: ASCII only. Always NFC; folds and trims byte by byte.
	classASCII textClass = iota
	// classLatin: every rune is below U+0300, where the combining marks start. Such
	// runes are NFC and no two of them compose (TestLatinIsNFC checks every pair),
	// so the text is NFC without asking norm.
	classLatin
	// classOther: anything else; norm decides.
	classOther
)

// latinLimit is the first rune outside classLatin (U+0300 COMBINING GRAVE ACCENT), and
// latinLead the first UTF-8 lead byte of a rune at or above it.
const (
	latinLimit = 0x300
	latinLead  = 0xCC
)

// appendStringToken canonicalises a JSON string token (tok starts with a quote). The
// body is checked in one pass; only a body with escapes is copied (unescaped) into
// dst's spare capacity, the common escape-free body is read in place.
func appendStringToken(dst, tok []byte, it *norm.Iter) ([]byte, Kind, error) {
	if len(tok) < 2 || tok[len(tok)-1] != '"' {
		return dst, KindNull, ErrInvalidToken
	}
	body := tok[1 : len(tok)-1]
	escaped, cls := false, classASCII
	for i := 0; i < len(body); i++ {
		c := body[i]
		if strPlain[c] {
			continue
		}
		switch {
		case c == '\\':
			// Skip the escaped byte: jsonstr.Append validates it. A backslash in last
			// position escapes the closing quote, so the string never ends.
			escaped = true
			i++
			if i == len(body) {
				return dst, KindNull, ErrInvalidToken
			}
		case c < utf8.RuneSelf: // the quote, or a control character
			return dst, KindNull, ErrInvalidToken
		case c >= latinLead:
			cls = classOther
		default:
			cls = max(cls, classLatin)
		}
	}
	// Escapes are ASCII, so the raw body is valid UTF-8 exactly when the unescaped
	// text is (lone surrogates are refused by jsonstr.Append).
	if cls != classASCII && !utf8.Valid(body) {
		return dst, KindNull, ErrInvalidToken
	}
	if !escaped {
		return appendStringValue(dst, body, cls, it)
	}
	start := len(dst)
	dst, ok := jsonstr.Append(dst, body)
	if !ok {
		return dst[:start], KindNull, ErrInvalidToken
	}
	end := len(dst)
	cls = unescapedClass(dst[start:end], cls)
	dst, kind, err := appendStringValue(dst, dst[start:end], cls, it)
	if err != nil {
		return dst[:start], KindNull, err
	}
	n := copy(dst[start:], dst[end:])
	return dst[:start+n], kind, nil
}

// unescapedClass raises cls, the class of a string's raw bytes, to the class of
// its decoded text u: an escape may decode to a rune outside ASCII or Latin. The
// lead bytes of UTF-8 classify runes exactly (runes below latinLimit have leads
// below latinLead), so the bytes are enough.
func unescapedClass(u []byte, cls textClass) textClass {
	if cls == classOther {
		return cls
	}
	for _, c := range u {
		switch {
		case c >= latinLead:
			return classOther
		case c >= utf8.RuneSelf:
			cls = max(cls, classLatin)
		}
	}
	return cls
}

// appendStringValue canonicalises an unescaped, valid UTF-8 string of class cls. s
// must not overlap dst's spare capacity. Most text is ASCII or Latin, or passes
// norm's quick check, so normalisation only runs (into spare capacity) when needed.
func appendStringValue(dst, s []byte, cls textClass, it *norm.Iter) ([]byte, Kind, error) {
	if cls != classOther || norm.NFC.QuickSpan(s) == len(s) {
		return appendNormalString(dst, s, cls)
	}
	start := len(dst)
	dst = appendNFC(dst, s, it)
	end := len(dst)
	dst, kind, err := appendNormalString(dst, dst[start:end], classOther)
	if err != nil {
		return dst[:start], KindNull, err
	}
	n := copy(dst[start:], dst[end:])
	return dst[:start+n], kind, nil
}

// appendNFC appends the NFC form of s to dst. It iterates with a norm.Iter because
// norm's Append and Transform put a reorder buffer on the heap on every call that
// has to normalise; an Iter carries that buffer and is reused. it may be nil: then
// one is borrowed from a pool.
func appendNFC(dst, s []byte, it *norm.Iter) []byte {
	if it == nil {
		p := iters.Get().(*norm.Iter)
		defer iters.Put(p)
		it = p
	}
	it.Init(norm.NFC, s)
	for !it.Done() {
		dst = append(dst, it.Next()...)
	}
	*it = norm.Iter{} // drop the reference to s: iterators outlive requests
	return dst
}

// iters holds the NFC iterators of AppendCanonical callers that bring none.
var iters = sync.Pool{New: func() any { return new(norm.Iter) }}

// appendNormalString classifies the NFC string s as a number, a boolean or text and
// appends its canonical form.
func appendNormalString(dst, s []byte, cls textClass) ([]byte, Kind, error) {
	t := trimSpace(s, cls)
	if len(t) > 0 && (t[0] == '-' || isDigit(t[0])) {
		if d, ok := parseDecimal(t); ok {
			return d.appendCanonical(dst)
		}
	}
	if len(t) <= len("falſe") { // ſ (long s) folds to s, so "falſe" is false too
		switch {
		case bytes.EqualFold(t, []byte("true")):
			return append(dst, tagBool, 't', 'r', 'u', 'e'), KindBool, nil
		case bytes.EqualFold(t, []byte("false")):
			return append(dst, tagBool, 'f', 'a', 'l', 's', 'e'), KindBool, nil
		}
	}
	dst = append(dst, tagText)
	if cls == classASCII {
		return appendTextASCII(dst, t), KindText, nil
	}
	return appendText(dst, t), KindText, nil
}

// trimSpace removes leading and trailing unicode.IsSpace runes.
func trimSpace(s []byte, cls textClass) []byte {
	for len(s) > 0 && s[0] < utf8.RuneSelf && asciiSpace[s[0]] {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] < utf8.RuneSelf && asciiSpace[s[len(s)-1]] {
		s = s[:len(s)-1]
	}
	if cls == classASCII || len(s) == 0 || (s[0] < utf8.RuneSelf && s[len(s)-1] < utf8.RuneSelf) {
		return s
	}
	return bytes.TrimFunc(s, unicode.IsSpace)
}

// foldASCII maps an ASCII byte to the smallest rune of its case-folding orbit: upper
// case for letters (k and s have non-ASCII orbit members, but larger ones).
var foldASCII = func() (t [utf8.RuneSelf]byte) {
	for c := range t {
		t[c] = byte(c)
		if 'a' <= c && c <= 'z' {
			t[c] -= 'a' - 'A'
		}
	}
	return t
}()

// appendTextASCII appends trimmed ASCII text with whitespace runs collapsed to one
// space and letters folded.
func appendTextASCII(dst, t []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, len(t))
	out := dst[n : n+len(t)]
	w := 0
	space := false
	for _, c := range t {
		if asciiSpace[c&0x7f] {
			space = true
			continue
		}
		if space {
			out[w] = ' '
			w++
			space = false
		}
		out[w] = foldASCII[c&0x7f]
		w++
	}
	return dst[:n+w]
}

// appendText is appendTextASCII for any valid UTF-8. Folding maps a rune to a smaller
// one, never to a longer encoding, and collapsing only shrinks, so the output fits in
// len(t) bytes.
func appendText(dst, t []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, len(t))
	out := dst[n : n+len(t)]
	w := 0
	space := false
	for i := 0; i < len(t); {
		c := t[i]
		if c < utf8.RuneSelf {
			i++
			if asciiSpace[c] {
				space = true
				continue
			}
			if space {
				out[w] = ' '
				w++
				space = false
			}
			out[w] = foldASCII[c]
			w++
			continue
		}
		r, size := utf8.DecodeRune(t[i:])
		i += size
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space {
			out[w] = ' '
			w++
			space = false
		}
		w += utf8.EncodeRune(out[w:], foldRune(r))
	}
	return dst[:n+w]
}

// decimal is a parsed decimal literal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
// The digit slices alias the input.
type decimal struct {
	neg       bool
	int, frac []byte
	exp       int // the literal's exponent, saturated at ±expSaturate
}

// parseDecimal parses all of t as a decimal literal (JSON's number grammar).
func parseDecimal(t []byte) (d decimal, ok bool) {
	i := 0
	if t[0] == '-' {
		d.neg = true
		i++
	}
	start := i
	switch {
	case i == len(t):
		return d, false
	case t[i] == '0':
		i++
	case isDigit(t[i]):
		for i++; i < len(t) && isDigit(t[i]); i++ {
		}
	default:
		return d, false
	}
	d.int = t[start:i]
	if i < len(t) && t[i] == '.' {
		i++
		start = i
		for ; i < len(t) && isDigit(t[i]); i++ {
		}
		if i == start {
			return d, false
		}
		d.frac = t[start:i]
	}
	if i < len(t) && (t[i] == 'e' || t[i] == 'E') {
		i++
		neg := false
		if i < len(t) && (t[i] == '+' || t[i] == '-') {
			neg = t[i] == '-'
			i++
		}
		start = i
		e := 0
		for ; i < len(t) && isDigit(t[i]); i++ {
			if e < expSaturate {
				e = e*10 + int(t[i]-'0')
			}
		}
		if i == start {
			return d, false
		}
		if neg {
			e = -e
		}
		d.exp = e
	}
	return d, i == len(t)
}

// digit returns the i-th digit of the mantissa, integer digits first.
func (d *decimal) digit(i int) byte {
	if i < len(d.int) {
		return d.int[i]
	}
	return d.frac[i-len(d.int)]
}

// appendDigits appends mantissa digits [from, to).
func (d *decimal) appendDigits(dst []byte, from, to int) []byte {
	if from < len(d.int) {
		dst = append(dst, d.int[from:min(to, len(d.int))]...)
		from = len(d.int)
	}
	if to > from {
		dst = append(dst, d.frac[from-len(d.int):to-len(d.int)]...)
	}
	return dst
}

// appendCanonical appends the number's canonical form: the significant digits in
// scientific notation, so every literal of one value has the same bytes.
func (d *decimal) appendCanonical(dst []byte) ([]byte, Kind, error) {
	n := len(d.int) + len(d.frac)
	if n > MaxDigits {
		return dst, KindNull, ErrNumberTooLong
	}
	first, last := -1, -1
	for i := 0; i < n; i++ {
		if d.digit(i) != '0' {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		// Zero, whatever its sign or exponent.
		return append(dst, tagNumber, '0'), KindNumber, nil
	}
	e := d.exp + len(d.int) - 1 - first
	if e > MaxExponent || e < -MaxExponent {
		return dst, KindNull, ErrExponentRange
	}
	sign := byte('+')
	if d.neg {
		sign = '-'
	}
	dst = append(dst, tagNumber, sign, d.digit(first))
	if last > first {
		dst = append(dst, '.')
		dst = d.appendDigits(dst, first+1, last+1)
	}
	dst = append(dst, 'e')
	return strconv.AppendInt(dst, int64(e), 10), KindNumber, nil
}
