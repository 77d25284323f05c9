package match

import (
	"strconv"
	"testing"
)

// benchRequest builds n items that all match, against a session with nFields fields
// (the n the items ask for, after some the SDK collected for other reasons), mixing
// the value kinds and the synonym lookups a real sessionData has.
func benchRequest(n, nFields int) ([]Item, []Field) {
	kinds := []struct{ item, field string }{
		{`35`, `"35.00"`},
		{`"José García"`, `"JOSE` + "\u0301" + ` GARCI` + "\u0301" + `A"`},
		{`"USD"`, `" usd "`},
		{`"0012345678901234567890"`, `"0012345678901234567890"`},
		{`true`, `"TRUE"`},
		{`12345678901234567890`, `"12345678901234567890"`},
	}
	var items []Item
	var fields []Field
	for i := 0; i < n; i++ {
		k := kinds[i%len(kinds)]
		key := []byte("item" + strconv.Itoa(i))
		it := Item{Key: key, Value: []byte(k.item)}
		name := key
		if i%2 == 1 {
			// Found through the second synonym, after one that is absent.
			name = []byte("Field_" + strconv.Itoa(i))
			it.Synonyms = [][]byte{[]byte("absent" + strconv.Itoa(i)), []byte("field_" + strconv.Itoa(i))}
		}
		items = append(items, it)
		fields = append(fields, Field{Key: name, Value: []byte(k.field)})
	}
	for len(fields) < nFields {
		fields = append(fields, Field{Key: []byte("other" + strconv.Itoa(len(fields))), Value: []byte(`"x"`)})
	}
	return items, fields
}

func benchCanonical(b *testing.B, raw string) {
	dst := make([]byte, 0, 4*len(raw)+16)
	r := []byte(raw)
	b.ReportAllocs()
	b.SetBytes(int64(len(r)))
	for b.Loop() {
		if _, _, err := AppendCanonical(dst[:0], r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalNumber(b *testing.B) { benchCanonical(b, `-12345678901234567890.50e-3`) }

func BenchmarkCanonicalNumberString(b *testing.B) { benchCanonical(b, `"35.00"`) }

func BenchmarkCanonicalText(b *testing.B) {
	benchCanonical(b, `"  1600 Amphitheatre   Parkway, Mountain View "`)
}

func BenchmarkCanonicalTextNFC(b *testing.B) { benchCanonical(b, `"José García, Málaga"`) }

func BenchmarkCanonicalTextNFD(b *testing.B) {
	benchCanonical(b, `"Jose`+"\u0301"+` Garci`+"\u0301"+`a, Ma`+"\u0301"+`laga"`)
}

func BenchmarkCanonicalTextEscaped(b *testing.B) {
	benchCanonical(b, `"Jos\u00e9 Garc\u00eda\tM\u00e1laga"`)
}

func benchMatch(b *testing.B, n, nFields int) {
	items, fields := benchRequest(n, nFields)
	var m Matcher
	var res Result
	_ = m.Match(items, fields, &res) // grow the scratch once, as a pooled matcher has
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Match(items, fields, &res); err != nil || !res.Matched {
			b.Fatal(err, res.Matched)
		}
	}
}

func BenchmarkMatch4(b *testing.B) { benchMatch(b, 4, 12) }

func BenchmarkMatch64(b *testing.B) { benchMatch(b, 64, 96) }

func BenchmarkMatch256(b *testing.B) { benchMatch(b, MaxItems, MaxItems) }

func BenchmarkValidateValue(b *testing.B) {
	r := []byte(`"35.00"`)
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateValue(r); err != nil {
			b.Fatal(err)
		}
	}
}
