// Package jsonstr decodes the contents of JSON string literals: the one
// strict unescaper that the request checks (server/jsonwire) and value
// canonicalisation (engine/match) share, so that both read a string's
// escapes the same way. It is pure (standard library only) and appends into
// the caller's buffer.
package jsonstr

import (
	"bytes"
	"unicode/utf8"
)

// Append appends the JSON string contents s (between the quotes) to dst with
// its escapes decoded. It reports false, with dst holding a partial
// decoding, on an unknown escape, a short or non-hex \u escape, or a \u
// escape of a lone UTF-16 surrogate: a lone half is no character, and
// decoders would each turn it into something else (U+FFFD, an error), so it
// is refused rather than guessed at. Bytes other than escapes are copied as
// they are; a caller that needs valid UTF-8 checks the raw bytes (escapes are
// ASCII, so the decoded text is valid exactly when they are).
func Append(dst, s []byte) ([]byte, bool) {
	return AppendMax(dst, s, -1)
}

// AppendMax is Append that also gives up (false) before the decoded contents
// would exceed limit bytes, so that a dst with room for limit bytes is never
// grown. A negative limit means no limit.
func AppendMax(dst, s []byte, limit int) ([]byte, bool) {
	start := len(dst)
	for len(s) > 0 {
		i := indexBackslash(s)
		if limit >= 0 && len(dst)-start+i > limit {
			return dst, false
		}
		dst = append(dst, s[:i]...)
		if i == len(s) {
			return dst, true
		}
		if i+1 == len(s) {
			return dst, false // a backslash that escapes nothing
		}
		c := s[i+1]
		s = s[i+2:]
		var r rune
		switch c {
		case '"', '\\', '/':
			r = rune(c)
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			var ok bool
			if r, ok = Hex4(s); !ok {
				return dst, false
			}
			s = s[4:]
			if 0xD800 <= r && r < 0xE000 {
				// A high surrogate must be followed by an escaped low one.
				if r >= 0xDC00 || len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
					return dst, false
				}
				lo, ok := Hex4(s[2:])
				if !ok || lo < 0xDC00 || lo >= 0xE000 {
					return dst, false
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				s = s[6:]
			}
		default:
			return dst, false
		}
		if limit >= 0 && len(dst)-start+utf8.RuneLen(r) > limit {
			return dst, false
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst, true
}

// indexBackslash is the offset of the first backslash in s, or len(s).
func indexBackslash(s []byte) int {
	if i := bytes.IndexByte(s, '\\'); i >= 0 {
		return i
	}
	return len(s)
}

// Hex4 decodes the four hex digits that start s (the digits of a \u
// escape), reporting false when s is shorter or one is not a hex digit.
func Hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
