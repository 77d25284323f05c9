package match

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// This file holds a slow, obviously-correct reference for the canonical form and
// for matching, written without the implementation's tricks: encoding/json and
// utf16 decode tokens, a regexp recognises decimals, math/big compares them,
// norm.NFC.String, strings.Fields and strings.EqualFold handle text. The fuzz
// targets check that the implementation decides exactly as the reference does.

// refValue is the reference's reading of one raw token.
type refValue struct {
	kind Kind
	num  *big.Rat
	b    bool
	text string // NFC, trimmed, whitespace runs collapsed; compare with EqualFold
}

var refDecimal = regexp.MustCompile(`^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$`)

// refCanonical decides what raw is, or which error it is.
func refCanonical(raw []byte) (refValue, error) {
	tok := bytes.Trim(raw, " \t\r\n")
	switch {
	case len(tok) > MaxValueBytes:
		return refValue{}, ErrValueTooLong
	case len(tok) == 0:
		return refValue{}, ErrInvalidToken
	case tok[0] == '{' || tok[0] == '[':
		return refValue{}, ErrNotScalar
	case !json.Valid(tok):
		return refValue{}, ErrInvalidToken
	}
	switch tok[0] {
	case 'n':
		return refValue{kind: KindNull}, nil
	case 't', 'f':
		return refValue{kind: KindBool, b: tok[0] == 't'}, nil
	case '"':
		s, ok := refUnquote(tok)
		if !ok {
			return refValue{}, ErrInvalidToken
		}
		return refString(s)
	}
	return refNumber(string(tok))
}

// refUnquote decodes a JSON string token that json.Valid accepted. encoding/json
// itself would quietly turn invalid UTF-8 and lone surrogates into U+FFFD, so the
// string is decoded to UTF-16 code units and the pairs are checked here.
func refUnquote(tok []byte) (string, bool) {
	if !utf8.Valid(tok) {
		return "", false
	}
	body := string(tok[1 : len(tok)-1])
	var units []uint16
	for i := 0; i < len(body); {
		if body[i] != '\\' {
			r, n := utf8.DecodeRuneInString(body[i:])
			units = utf16.AppendRune(units, r)
			i += n
			continue
		}
		c := body[i+1]
		i += 2
		switch c {
		case 'u':
			v, err := strconv.ParseUint(body[i:i+4], 16, 16)
			if err != nil {
				return "", false
			}
			units = append(units, uint16(v))
			i += 4
		case 'b':
			units = append(units, '\b')
		case 'f':
			units = append(units, '\f')
		case 'n':
			units = append(units, '\n')
		case 'r':
			units = append(units, '\r')
		case 't':
			units = append(units, '\t')
		default:
			units = append(units, uint16(c))
		}
	}
	for i := 0; i < len(units); i++ {
		switch u := rune(units[i]); {
		case utf16.IsSurrogate(u) && u < 0xDC00 && i+1 < len(units) && units[i+1] >= 0xDC00 && units[i+1] < 0xE000:
			i++
		case utf16.IsSurrogate(u):
			return "", false
		}
	}
	return string(utf16.Decode(units)), true
}

func refString(s string) (refValue, error) {
	n := norm.NFC.String(s)
	t := strings.TrimFunc(n, unicode.IsSpace)
	if refDecimal.MatchString(t) {
		return refNumber(t)
	}
	if strings.EqualFold(t, "true") || strings.EqualFold(t, "false") {
		return refValue{kind: KindBool, b: strings.EqualFold(t, "true")}, nil
	}
	return refValue{kind: KindText, text: strings.Join(strings.Fields(n), " ")}, nil
}

func refNumber(lit string) (refValue, error) {
	m := refDecimal.FindStringSubmatch(lit)
	if m == nil {
		return refValue{}, ErrInvalidToken
	}
	digits := m[2] + m[3]
	if len(digits) > MaxDigits {
		return refValue{}, ErrNumberTooLong
	}
	first := strings.IndexFunc(digits, func(r rune) bool { return r != '0' })
	if first < 0 {
		return refValue{kind: KindNumber, num: new(big.Rat)}, nil
	}
	// The exponent of d.ddd × 10^e, in big arithmetic so no literal can overflow it.
	e := new(big.Int)
	if m[4] != "" {
		e.SetString(m[4], 10)
	}
	e.Add(e, big.NewInt(int64(len(m[2])-1-first)))
	if e.CmpAbs(big.NewInt(MaxExponent)) > 0 {
		return refValue{}, ErrExponentRange
	}
	r, ok := new(big.Rat).SetString(lit)
	if !ok {
		panic("big.Rat refused " + lit)
	}
	return refValue{kind: KindNumber, num: r}, nil
}

// respell returns other literals of the decimal s (if it is one), so that equal
// numbers written differently meet: an integer mantissa with an exponent, a trailing
// fraction zero, and plain positional notation when the exponent is small.
func respell(s string) []string {
	m := refDecimal.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return nil
	}
	sign, intp, frac, exp := m[1], m[2], m[3], m[4]
	out := []string{sign + intp + "." + frac + "0"}
	if exp != "" {
		out[0] += "e" + exp
	}
	digits := strings.TrimLeft(intp+frac, "0")
	if digits == "" {
		return append(out, "-0", "0e7")
	}
	e := new(big.Int)
	if exp != "" {
		e.SetString(exp, 10)
	}
	e.Sub(e, big.NewInt(int64(len(frac)))) // the value is sign digits × 10^e
	out = append(out, sign+digits+"e"+e.String())
	if e.IsInt64() && e.Int64() > -60 && e.Int64() < 60 {
		switch k := int(e.Int64()); {
		case k >= 0:
			out = append(out, sign+digits+strings.Repeat("0", k))
		case -k < len(digits):
			out = append(out, sign+digits[:len(digits)+k]+"."+digits[len(digits)+k:])
		default:
			out = append(out, sign+"0."+strings.Repeat("0", -k-len(digits))+digits)
		}
	}
	return out
}

// refEqual says whether two reference values match.
func refEqual(a, b refValue) bool {
	if a.kind != b.kind || a.kind == KindNull {
		return false
	}
	switch a.kind {
	case KindBool:
		return a.b == b.b
	case KindNumber:
		return a.num.Cmp(b.num) == 0
	}
	return strings.EqualFold(a.text, b.text)
}

// jsonQuote writes s as a JSON string literal, escaping only what JSON requires.
// Invalid UTF-8 stays as it is (and makes the token invalid).
func jsonQuote(s string) []byte {
	b := []byte{'"'}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = fmt.Appendf(b, `\u%04x`, c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// jsonQuoteEscaped writes s with every valid rune as a \u escape (surrogate pairs
// above the BMP), so unescaping has to produce the text.
func jsonQuoteEscaped(s string) []byte {
	b := []byte{'"'}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, s[i])
		} else if r > 0xFFFF {
			hi, lo := utf16.EncodeRune(r)
			b = fmt.Appendf(b, `\u%04X\u%04x`, hi, lo)
		} else {
			b = fmt.Appendf(b, `\u%04x`, r)
		}
		i += n
	}
	return append(b, '"')
}

// checkToken canonicalises raw and checks it against the reference and the
// properties every canonical form has.
func checkToken(t *testing.T, raw []byte) ([]byte, refValue) {
	c, k, err := canonical(t, raw) // the fixtures' invariants, see datadriven_test.go
	ref, refErr := refCanonical(raw)
	if err != refErr {
		t.Fatalf("%q: error %v, reference %v", raw, err, refErr)
	}
	if err == nil && k != ref.kind {
		t.Fatalf("%q: kind %v, reference %v", raw, k, ref.kind)
	}
	if k == KindText {
		// The text itself, not only equality: tag, then the reference's text with
		// each rune replaced by the least rune strings.EqualFold equates it with.
		want := append([]byte{tagText}, strings.Map(refFold, ref.text)...)
		if !bytes.Equal(c, want) {
			t.Fatalf("%q: canonical %q, reference %q", raw, c, want)
		}
	}
	return c, ref
}

// refFold returns the least rune that strings.EqualFold considers equal to r, by
// search; refFolds remembers the answers (fuzz workers are single goroutines).
func refFold(r rune) rune {
	if f, ok := refFolds[r]; ok {
		return f
	}
	f := r
	if unicode.SimpleFold(r) != r {
		for c := rune(0); c < r; c++ {
			if strings.EqualFold(string(c), string(r)) {
				f = c
				break
			}
		}
	}
	refFolds[r] = f
	return f
}

var refFolds = map[rune]rune{}

// FuzzCanonicalDifferential checks that two values have equal canonical forms exactly
// when the reference says they match. Each input is tried as a JSON string
// literal, as one with every rune escaped, and as a raw token.
func FuzzCanonicalDifferential(f *testing.F) {
	for _, seed := range [][2]string{
		{"35", "35.00"}, {"3.5e1", "3.5E+1"}, {"-0", "0.0"}, {"0e-99", "-0.000"},
		{"12345678901234567890", "12345678901234567891"}, {"0066", "66"},
		{"true", " TRUE "}, {"false", "falſe"}, {"null", "null"}, {"é", "e\u0301"},
		{"hello   world", "Hello World"}, {"35 USD", "35"}, {"\u212a", "k"},
		{"1e9999", "1e10000"}, {"0.1e-9998", "1e-9999"}, {`{"a":1}`, "[1]"},
		{`"\ud83d"`, `"\ud83d\ude00"`}, {"\xff", "\xc3\xa9"}, {"ß", "ẞ"},
		{"ς", "Σ"}, {" \u0301x", "\u0301X"}, {"\u00a035", "35"}, {"ǅ", "ǆ"},
		{"\u0000", ""}, {"a\u3000b", "A B"}, {"9" + strings.Repeat("0", 100), "9e100"},
		{"\u1100\u1161\u11a8", "\uac01"}, {"\u0958", "\u0915\u093c"}, {"\u2000x", " X"},
		{"0.0001", "1e-4"}, {"-120.050e+2", "-12005"}, {"1.5E-7", "0.00000015"},
		{"99999999999999999999", "1e20"}, {"0.000000000001234", "1234e-15"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		var toks [][]byte
		for _, s := range []string{a, b} {
			// Spellings that often mean the same value, so that equal pairs are common.
			toks = append(toks, jsonQuote(s), jsonQuoteEscaped(s), []byte(s),
				jsonQuote(norm.NFD.String(s)), jsonQuote("\t "+strings.ToUpper(s)+"\u00a0"))
			for _, n := range respell(s) {
				toks = append(toks, []byte(n), jsonQuote(n))
			}
		}
		canon := make([][]byte, len(toks))
		refs := make([]refValue, len(toks))
		errs := make([]bool, len(toks))
		for i, tok := range toks {
			c, ref := checkToken(t, tok)
			canon[i], refs[i], errs[i] = c, ref, c == nil
		}
		for i := range toks {
			for j := i; j < len(toks); j++ {
				if errs[i] || errs[j] {
					continue
				}
				got, want := Equal(canon[i], canon[j]), refEqual(refs[i], refs[j])
				if got != want {
					t.Fatalf("%q ~ %q: Equal = %v, reference %v (canonical %q and %q)",
						toks[i], toks[j], got, want, canon[i], canon[j])
				}
			}
		}
	})
}

// FuzzDecimalSpellings writes one decimal value several ways (point moved, leading
// and trailing zeros, exponent adjusted, as a number and as a string) and checks
// that every spelling within the limits has the same canonical form, and that
// changing the last digit changes it. Byte-level mutation rarely turns one literal
// into another of the same value; this target builds them by construction.
func FuzzDecimalSpellings(f *testing.F) {
	f.Add(false, "35", 0, uint8(0), uint8(1))
	f.Add(true, "1234", -7, uint8(3), uint8(2))
	f.Add(false, "12345678901234567890", 0, uint8(1), uint8(20))
	f.Add(false, "9", 9999, uint8(0), uint8(1))
	f.Add(true, "5", -10000, uint8(2), uint8(1))
	f.Add(false, strings.Repeat("7", 100), 0, uint8(0), uint8(50))
	f.Fuzz(func(t *testing.T, neg bool, digits string, exp int, zeros, point uint8) {
		// The value is sign × D × 10^exp, D a digit string without leading zeros.
		d := []byte(digits)
		for i := range d {
			d[i] = '0' + d[i]%10
		}
		D := strings.TrimLeft(string(d), "0")
		if D == "" || len(D) > MaxDigits+2 || exp > 1<<20 || exp < -1<<20 {
			return
		}
		sign := ""
		if neg {
			sign = "-"
		}
		z := int(zeros % 8)
		k := 1 + int(point)%len(D) // integer digits when the point moves inside D
		spellings := []string{
			sign + D + "e" + strconv.Itoa(exp),
			sign + D[:k] + "." + D[k:] + strings.Repeat("0", z) + "E" + fmt.Sprintf("%+d", exp+len(D)-k),
			sign + "0." + strings.Repeat("0", z) + D + "e" + strconv.Itoa(exp+len(D)+z),
			sign + D + strings.Repeat("0", z) + "e" + strconv.Itoa(exp-z),
		}
		if k == len(D) {
			spellings[1] = sign + D + "." + strings.Repeat("0", z+1) + "e" + strconv.Itoa(exp)
		}
		if exp >= 0 && exp < 50 {
			spellings = append(spellings, sign+D+strings.Repeat("0", exp))
		}
		var first []byte
		for _, sp := range spellings {
			for _, tok := range [][]byte{[]byte(sp), jsonQuote(" " + sp)} {
				c, _ := checkToken(t, tok)
				if c == nil {
					continue
				}
				if first == nil {
					first = c
				} else if !Equal(first, c) {
					t.Fatalf("%s: canonical %q, another spelling gave %q (%q)", tok, c, first, spellings)
				}
			}
		}
		// The neighbouring value differs in its last significant digit.
		last := D[len(D)-1]
		other := D[:len(D)-1] + string('0'+(last-'0'+1)%10)
		c, _ := checkToken(t, []byte(sign+other+"e"+strconv.Itoa(exp)))
		if first != nil && c != nil && Equal(first, c) {
			t.Fatalf("%s%se%d and %s%se%d have the same canonical form %q", sign, D, exp, sign, other, exp, c)
		}
	})
}

// FuzzAppendCanonical feeds arbitrary bytes: never a panic, and always the
// reference's decision.
func FuzzAppendCanonical(f *testing.F) {
	for _, s := range []string{
		`35`, `"35.00"`, `-0.0e-0`, `"\u00e9"`, `"\ud800"`, `"\ud800\udc00"`, `{"a":1}`,
		"\"\xed\xa0\x80\"", `"a\"b"`, `"a\\"`, `"\`, `1e99999999999999999999`, ` null `,
		"\"e\u0301\u0323\u0307\"", `"\u0000\u001f"`, "\"\t\"", `tru`, `"` + strings.Repeat("a", 4094) + `"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, ref := checkToken(t, raw)
		if c != nil && ref.kind != KindNull {
			if !Equal(c, c) {
				t.Fatalf("%q does not match itself", raw)
			}
		}
	})
}

// fuzzNames and fuzzValues are small alphabets so that fuzzed requests hit the
// interesting collisions: names equal up to case (including the Kelvin sign and the
// long s), values equal up to type.
var (
	fuzzNames = []string{"a", "A", "b", "B", "k", "K", "\u212a", "total", "Total", "TOTAL",
		"é", "É", "e\u0301", "s", "S", "ſ", "\xff", "\xfe", "\uFFFD", "", "x"}
	fuzzValues = []string{`35`, `"35.00"`, `3.5e1`, `null`, `true`, `"TRUE"`, `"x"`, `"X "`,
		`{}`, `"bad`, `"0066"`, `66`, `"e\u0301"`, `"é"`, `false`, `""`}
)

// FuzzMatch builds requests from the fuzzer's bytes over small alphabets and checks
// Match against a plain reference: pairwise duplicate checks, a linear field scan
// per name, the reference's value equality.
func FuzzMatch(f *testing.F) {
	f.Add([]byte{3, 2, 0, 1, 0, 7, 1, 2, 8, 0, 1, 3})
	f.Add([]byte{5, 6, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 0, 1, 2})
	f.Add([]byte{0, 3, 1, 2, 3, 4, 5, 6})
	f.Add([]byte{2, 1, 16, 0, 17, 1, 18, 2})
	var m Matcher // shared across runs, like a pooled matcher
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := int(data[0])
			data = data[1:]
			return b
		}
		var items []Item
		var fields []Field
		nItems, nFields := next()%24, next()%24
		for i := 0; i < nFields; i++ {
			fields = append(fields, Field{
				Key:   []byte(fuzzNames[next()%len(fuzzNames)]),
				Value: []byte(fuzzValues[next()%len(fuzzValues)]),
				TS:    int64(next() % 3), // few distinct times: ties and order both
			})
		}
		for i := 0; i < nItems; i++ {
			it := Item{
				Key:   []byte(fuzzNames[next()%len(fuzzNames)]),
				Value: []byte(fuzzValues[next()%len(fuzzValues)]),
			}
			for s := next() % 4; s > 0; s-- {
				it.Synonyms = append(it.Synonyms, []byte(fuzzNames[next()%len(fuzzNames)]))
			}
			items = append(items, it)
		}

		var res Result
		err := m.Match(items, fields, &res)
		want, wantItem, wantErr := refMatch(items, fields)
		if err != wantErr || res.ErrItem != wantItem {
			t.Fatalf("error %v at %d, reference %v at %d\nitems %q\nfields %v", err, res.ErrItem, wantErr, wantItem, items, fields)
		}
		if err != nil {
			return
		}
		got := fmt.Sprintf("%v %v", res.Collected, res.Matched)
		for _, d := range res.Details {
			got += fmt.Sprintf(" %q:%v:%q", d.Key, d.Reason, d.Field)
		}
		if got != want {
			t.Fatalf("Match\n%s\nreference\n%s\nitems %q\nfields %v", got, want, items, fields)
		}
	})
}

// refEqualName is name equality rune by rune: strings.EqualFold for valid runes,
// identity for bytes that are not UTF-8.
func refEqualName(a, b []byte) bool {
	for len(a) > 0 && len(b) > 0 {
		ra, na := utf8.DecodeRune(a)
		rb, nb := utf8.DecodeRune(b)
		badA, badB := ra == utf8.RuneError && na == 1, rb == utf8.RuneError && nb == 1
		switch {
		case badA || badB:
			if !badA || !badB || a[0] != b[0] {
				return false
			}
		case !strings.EqualFold(string(ra), string(rb)):
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) == 0 && len(b) == 0
}

func refMatch(items []Item, fields []Field) (string, int, error) {
	if len(items) > MaxItems {
		return "", MaxItems, ErrTooManyItems
	}
	vals := make([]refValue, len(items))
	for i, it := range items {
		for _, n := range append([][]byte{it.Key}, it.Synonyms...) {
			if len(n) == 0 {
				return "", i, ErrEmptyKey
			}
			if len(n) > MaxKeyBytes {
				return "", i, ErrKeyTooLong
			}
			if len(it.Synonyms) > MaxSynonyms {
				return "", i, ErrTooManySynonyms
			}
		}
		for _, prev := range items[:i] {
			if refEqualName(prev.Key, it.Key) {
				return "", i, ErrDuplicateKey
			}
		}
		v, err := refCanonical(it.Value)
		if err != nil {
			return "", i, err
		}
		vals[i] = v
	}
	find := func(name []byte) int {
		// The latest TS among the names equal up to case; among those,
		// the exact spelling, else the first.
		latest, seen := int64(0), false
		for _, f := range fields {
			if refEqualName(f.Key, name) && (!seen || f.TS > latest) {
				latest, seen = f.TS, true
			}
		}
		for j, f := range fields {
			if f.TS == latest && bytes.Equal(f.Key, name) {
				return j
			}
		}
		for j, f := range fields {
			if f.TS == latest && refEqualName(f.Key, name) {
				return j
			}
		}
		return -1
	}
	collected, matched := len(items) == 0 && len(fields) > 0, len(items) > 0
	var out string
	for i, it := range items {
		j := -1
		for _, n := range append([][]byte{it.Key}, it.Synonyms...) {
			if j = find(n); j >= 0 {
				break
			}
		}
		reason, field := NotCollected, []byte(nil)
		if j >= 0 {
			collected, reason, field = true, Mismatch, fields[j].Key
			if fv, err := refCanonical(fields[j].Value); err == nil && refEqual(vals[i], fv) {
				reason = Match
			}
		}
		matched = matched && reason == Match
		out += fmt.Sprintf(" %q:%v:%q", it.Key, reason, field)
	}
	return fmt.Sprintf("%v %v", collected, matched) + out, -1, nil
}

// TestReferenceAgrees runs the reference over the fixture-style corner cases so that a
// broken reference is caught without fuzzing.
func TestReferenceAgrees(t *testing.T) {
	for _, raw := range []string{
		`35`, `"35.00"`, `"0066"`, `" TRUE "`, `"falſe"`, `null`, `"e\u0301"`, `"\ud83d"`,
		`1e10000`, `0.1e-9998`, `"` + strings.Repeat("1", 101) + `"`, "\"\xff\"", `[1]`,
	} {
		checkToken(t, []byte(raw))
	}
}
