package jsonstr

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestAppend(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{``, ``, true},
		{`plain`, `plain`, true},
		{`a\"b\\c\/d`, `a"b\c/d`, true},
		{`\b\f\n\r\t`, "\b\f\n\r\t", true},
		{`caf\u00e9`, "café", true},
		{`\u00E9\u20ac`, "é€", true},
		{`\ud83d\ude00!`, "😀!", true},
		{`\ud83d`, ``, false},        // high half alone
		{`\ud83dx\ude00`, ``, false}, // high half not followed by an escape
		{`\ud83d\u0041`, ``, false},  // high half followed by a non-surrogate
		{`\ude00`, ``, false},        // low half alone
		{`\u12`, ``, false},          // short
		{`\u12g4`, ``, false},        // not hex
		{`\x41`, ``, false},          // unknown escape
		{`tail\`, ``, false},         // a backslash escaping nothing
	} {
		got, ok := Append([]byte("pre:"), []byte(tc.in))
		if ok != tc.ok || ok && string(got) != "pre:"+tc.want {
			t.Errorf("Append(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestAppendMax: the limit is on the decoded bytes, and a dst with room for
// the limit is never grown.
func TestAppendMax(t *testing.T) {
	buf := make([]byte, 0, 8)
	if got, ok := AppendMax(buf, []byte(`abcd\u00e9fg`), 8); !ok || string(got) != "abcdéfg" || &got[:1][0] != &buf[:1][0] {
		t.Errorf("within the limit: %q, %v", got, ok)
	}
	for _, in := range []string{`abcdefghi`, `abcdefg\u00e9`, `abcdefgh\n`} {
		got, ok := AppendMax(buf, []byte(in), 8)
		if ok || cap(got) != 8 {
			t.Errorf("AppendMax(%q, 8) = %q, %v (cap %d); want a refusal in place", in, got, ok, cap(got))
		}
	}
}

// FuzzAppend holds Append to encoding/json on every string both accept, and
// to refusing what is not valid UTF-8 once decoded (a lone surrogate).
func FuzzAppend(f *testing.F) {
	for _, s := range []string{`a`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `\"\\\/\b\f\n\r\t`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := Append(nil, []byte(s))
		if !ok {
			return
		}
		if !utf8.Valid([]byte(s)) {
			return // raw bytes are the caller's to check
		}
		var want string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &want); err != nil {
			return // e.g. a raw quote or control character, which the caller refuses first
		}
		if string(got) != want {
			t.Fatalf("Append(%q) = %q, encoding/json %q", s, got, want)
		}
	})
}
