package match

import (
	"unicode"
	"unicode/utf8"
)

// foldRune maps r to the smallest rune of its simple case-folding orbit (the runes
// unicode.SimpleFold cycles through). Two runes are equal under strings.EqualFold
// exactly when they map to the same rune, which is what makes folded text
// byte-comparable. The smallest member is never longer in UTF-8 than r itself.
func foldRune(r rune) rune {
	if r < latinLimit {
		return rune(foldLatin[r])
	}
	return foldOrbit(r)
}

// foldLatin is foldRune for the runes below U+0300, computed once: Latin text is
// common and walking an orbit costs a few binary searches.
var foldLatin = func() (t [latinLimit]uint16) {
	for r := range t {
		t[r] = uint16(foldOrbit(rune(r)))
	}
	return t
}()

// foldOrbit walks r's orbit for its smallest member.
func foldOrbit(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}

// nameRune decodes the first rune of a name and folds it. Names are meant to be
// UTF-8, but they are not validated here, so a byte that does not start a valid
// encoding comes back as a negative value of its own: it then equals only the same
// byte, where bytes.EqualFold would equate every invalid byte with every other.
func nameRune(b []byte) (rune, int) {
	if c := b[0]; c < utf8.RuneSelf {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		return rune(c), 1
	}
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError && size == 1 {
		return -1 - rune(b[0]), 1
	}
	return foldRune(r), size
}

// equalName reports whether two field names are equal under Unicode simple case
// folding (strings.EqualFold for valid UTF-8).
func equalName(a, b []byte) bool {
	for len(a) > 0 && len(b) > 0 {
		if ca, cb := a[0], b[0]; ca|cb < utf8.RuneSelf {
			if ca != cb && upperASCII(ca) != upperASCII(cb) {
				return false
			}
			a, b = a[1:], b[1:]
			continue
		}
		ra, na := nameRune(a)
		rb, nb := nameRune(b)
		if ra != rb {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) == len(b)
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// hashName hashes the folded runes of a name (FNV-1a, then a final mix because the
// tables index by the low bits), so names equal under equalName hash equally.
func hashName(b []byte) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for len(b) > 0 {
		if c := b[0]; c < utf8.RuneSelf {
			h = (h ^ uint64(upperASCII(c))) * prime
			b = b[1:]
			continue
		}
		r, n := nameRune(b)
		h = (h ^ uint64(uint32(r))) * prime
		b = b[n:]
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}
