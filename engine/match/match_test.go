package match

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestKindReasonString(t *testing.T) {
	for k, want := range map[Kind]string{KindNull: "null", KindBool: "boolean", KindNumber: "number", KindText: "text", 9: "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d) = %q, want %q", k, got, want)
		}
	}
	for r, want := range map[Reason]string{NotCollected: "not_collected", Match: "match", Mismatch: "mismatch", 7: "Reason(7)"} {
		if got := r.String(); got != want {
			t.Errorf("Reason(%d) = %q, want %q", r, got, want)
		}
	}
}

// TestASCIITables checks the fast-path tables against the unicode package.
func TestASCIITables(t *testing.T) {
	for c := rune(0); c < utf8.RuneSelf; c++ {
		if asciiSpace[c] != unicode.IsSpace(c) {
			t.Errorf("asciiSpace[%#x] = %v", c, asciiSpace[c])
		}
		if rune(foldASCII[c]) != foldOrbit(c) {
			t.Errorf("foldASCII[%#x] = %#x, orbit minimum %#x", c, foldASCII[c], foldOrbit(c))
		}
		if want := c >= 0x20 && c != '"' && c != '\\'; strPlain[c] != want {
			t.Errorf("strPlain[%#x] = %v", c, strPlain[c])
		}
	}
	for c := utf8.RuneSelf; c < 256; c++ {
		if strPlain[c] {
			t.Errorf("strPlain[%#x] is set for a non-ASCII byte", c)
		}
	}
}

// TestFoldRune checks every rune: its fold is the smallest member of its orbit, the
// whole orbit folds to it, and it never needs more UTF-8 bytes (appendText relies
// on that to fold in place).
func TestFoldRune(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if 0xD800 <= r && r < 0xE000 {
			continue
		}
		f := foldRune(r)
		if f > r || utf8.RuneLen(f) > utf8.RuneLen(r) {
			t.Fatalf("foldRune(%U) = %U", r, f)
		}
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			if o < f || foldRune(o) != f {
				t.Fatalf("orbit of %U: foldRune(%U) = %U, foldRune(%U) = %U", r, r, f, o, foldRune(o))
			}
		}
	}
}

// TestLatinIsNFC proves what classLatin assumes: every rune below U+0300 is NFC on its
// own and next to any other such rune, and exactly those runes have UTF-8 lead
// bytes below latinLead.
func TestLatinIsNFC(t *testing.T) {
	var buf [8]byte
	for a := rune(0); a < latinLimit; a++ {
		if s := string(a); !norm.NFC.IsNormalString(s) {
			t.Fatalf("%U is not NFC", a)
		}
		for b := rune(0); b < latinLimit; b++ {
			n := utf8.EncodeRune(buf[:], a)
			n += utf8.EncodeRune(buf[n:], b)
			if !norm.NFC.IsNormal(buf[:n]) {
				t.Fatalf("%U %U is not NFC", a, b)
			}
		}
	}
	if n := utf8.EncodeRune(buf[:], latinLimit-1); buf[0] >= latinLead || n != 2 {
		t.Fatalf("U+02FF starts with %#x", buf[0])
	}
	if utf8.EncodeRune(buf[:], latinLimit); buf[0] != latinLead {
		t.Fatalf("U+0300 starts with %#x", buf[0])
	}
}

// TestNames checks name equality and hashing over the fuzz alphabet, pairwise.
func TestNames(t *testing.T) {
	for _, a := range fuzzNames {
		for _, b := range fuzzNames {
			eq := equalName([]byte(a), []byte(b))
			if want := refEqualName([]byte(a), []byte(b)); eq != want {
				t.Errorf("equalName(%q, %q) = %v, want %v", a, b, eq, want)
			}
			if eq && hashName([]byte(a)) != hashName([]byte(b)) {
				t.Errorf("%q and %q are equal but hash differently", a, b)
			}
		}
	}
}

// TestResultReset checks that an error leaves no stale result behind.
func TestResultReset(t *testing.T) {
	var m Matcher
	var res Result
	items := []Item{{Key: []byte("a"), Value: []byte("1")}}
	fields := []Field{{Key: []byte("A"), Value: []byte(`"1.0"`)}}
	if err := m.Match(items, fields, &res); err != nil || !res.Matched || !res.Collected || len(res.Details) != 1 || res.ErrItem != -1 {
		t.Fatalf("match: %v %+v", err, res)
	}
	items = append(items, Item{Key: []byte("A"), Value: []byte("1")})
	if err := m.Match(items, fields, &res); err != ErrDuplicateKey || res.Matched || res.Collected || len(res.Details) != 0 || res.ErrItem != 1 {
		t.Fatalf("duplicate: %v %+v", err, res)
	}
}

// TestLimitErrorsStateTheLimits: the limit errors' texts, which clients
// read, say the limits the constants set.
func TestLimitErrorsStateTheLimits(t *testing.T) {
	for _, c := range []struct {
		err  error
		says string
	}{
		{ErrValueTooLong, strconv.Itoa(MaxValueBytes) + " bytes"},
		{ErrNumberTooLong, strconv.Itoa(MaxDigits) + " digits"},
		{ErrExponentRange, "+-" + strconv.Itoa(MaxExponent)},
	} {
		if !strings.Contains(c.err.Error(), c.says) {
			t.Errorf("%q does not say %q", c.err, c.says)
		}
	}
}
