package jsonwire

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckSyntax(t *testing.T) {
	cases := []struct {
		in   string
		code string // "" = accepted
		says string
	}{
		{`{}`, "", ""},
		{` {"a":[1,-2.5e+3,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9"]} `, "", ""},
		{`"\ud83d\ude00"`, "", ""},
		{"\"\u00e9\U0001F600\"", "", ""},
		{``, "empty_body", ""},
		{`{`, "invalid_json", "unexpected end of the body at byte 1"},
		{`{"a"}`, "invalid_json", "expected ':'"},
		{`{"a":1,}`, "invalid_json", "expected a field name at byte 7"},
		{`[1,]`, "invalid_json", "unexpected character at byte 3 (in [1])"},
		{`{"a":{"b":[1,2,x]}}`, "invalid_json", "(in a.b[2])"},
		{`[1 2]`, "invalid_json", "expected ',' or ']'"},
		{`01`, "trailing_data", ""},
		{`-`, "invalid_json", "invalid number"},
		{`1.`, "invalid_json", "invalid number"},
		{`1e`, "invalid_json", "invalid number"},
		{`.5`, "invalid_json", "unexpected character"},
		{`tru`, "invalid_json", "invalid literal"},
		{`nul`, "invalid_json", "invalid literal"},
		{`"\u12"`, "invalid_json", "\\u escape"},
		{`"\a"`, "invalid_json", "invalid escape"},
		{"\"a\x00\"", "invalid_json", "control character"},
		{"\"a\xff\"", "invalid_utf8", "at byte 2"},
		{`"\ud83d\ude00"`, "", ""},
		{`"x\uD83D\uDE00y"`, "", ""},
		{`{"k":"a\ud800"}`, "invalid_utf8", "lone UTF-16 surrogate (a high half without its low half) in a string at byte 7 (in k)"},
		{`"\ud800x"`, "invalid_utf8", "high half without its low half"},
		{`"\ud800\u0041"`, "invalid_utf8", "high half without its low half"},
		{`"\ud800\ud800"`, "invalid_utf8", "high half without its low half"},
		{`"\ude00\ud83d"`, "invalid_utf8", "low half without its high half) in a string at byte 1"},
		{`"\udfff"`, "invalid_utf8", "low half"},
		{`"\ud800\u12"`, "invalid_utf8", "high half"},
		{`{} {}`, "trailing_data", "at byte 3"},
		{strings.Repeat("[", 16) + strings.Repeat("]", 16), "", ""},
		{strings.Repeat("[", 17) + strings.Repeat("]", 17), "nesting_too_deep", "16 levels"},
		{strings.Repeat(`{"a":`, 17) + "1" + strings.Repeat("}", 17), "nesting_too_deep", "a.a.a"},
	}
	var c Checker
	for _, tc := range cases {
		ok := c.CheckSyntax([]byte(tc.in))
		code := ""
		if !ok {
			code = c.Problem.String()
		}
		if code != tc.code || !strings.Contains(string(c.Msg), tc.says) {
			t.Errorf("checkSyntax(%.40q) = %q %q, want %q containing %q", tc.in, code, c.Msg, tc.code, tc.says)
		}
	}
}

// FuzzCheckSyntax: on valid UTF-8 within the nesting limit, checkSyntax
// agrees with encoding/json.
func FuzzCheckSyntax(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2,{"b":null}]}`, `"\u00e9"`, `[1e5,-0.5]`, `{"a":1,}`, `01`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Checker
		ok := c.CheckSyntax(b)
		if !ok && c.Problem == NoProblem {
			t.Fatal("refused without a problem")
		}
		if !utf8.Valid(b) {
			if ok && json.Valid(b) {
				// fine: the invalid bytes were outside strings? impossible: then json.Valid fails.
				t.Fatalf("accepted invalid UTF-8 %q", b)
			}
			return
		}
		if c.Problem == NestingTooDeep {
			return
		}
		if c.Problem == InvalidUTF8 {
			// On valid UTF-8 only a lone surrogate escape, which
			// encoding/json accepts (and decodes as U+FFFD).
			if !bytes.Contains(b, []byte(`\u`)) {
				t.Fatalf("invalid_utf8 for %q without a \\u escape: %s", b, c.Msg)
			}
			return
		}
		if ok != json.Valid(b) && !(c.Problem == EmptyBody && !json.Valid(b)) {
			t.Fatalf("checkSyntax(%q) = %v (%s), json.Valid = %v", b, ok, c.Msg, json.Valid(b))
		}
	})
}

func TestAppendJSONString(t *testing.T) {
	cases := map[string]string{
		"":                   `""`,
		"plain":              `"plain"`,
		`q"b\`:               `"q\"b\\"`,
		"\n\r\t\x00\x1f":     `"\n\r\t\u0000\u001f"`,
		"é😀":                 `"é😀"`,
		"\u2028\u2029":       `"\u2028\u2029"`,
		"bad\xffutf8\xc3":    `"bad\ufffdutf8\ufffd"`,
		"<script>&</script>": `"<script>&</script>"`,
	}
	for in, want := range cases {
		if got := string(AppendString(nil, in)); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\"b\\c\x00\u2028é\xff")
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, out, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q -> %s -> %q", s, out, back)
		}
	})
}

func TestAppendJSONFloat(t *testing.T) {
	cases := []struct {
		f    float64
		bits int
		want string
	}{
		{0, 32, "0"},
		{1, 32, "1"},
		{float64(float32(0.83)), 32, "0.83"},
		{float64(float32(0.9712345)), 32, "0.9712345"},
		{-0.5, 64, "-0.5"},
		{1e-7, 64, "1e-7"},
		{1e21, 64, "1e+21"},
		{123456789, 64, "123456789"},
		{math.NaN(), 64, "0"},
		{math.Inf(1), 32, "0"},
	}
	for _, c := range cases {
		got := string(AppendFloat(nil, c.f, c.bits))
		if got != c.want {
			t.Errorf("AppendFloat(%v, %d) = %s, want %s", c.f, c.bits, got, c.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s is not JSON", got)
		}
	}
}

// TestCheckShapeOpen: an Open object skips members it does not name, nested
// ones included, and still checks every member it names.
func TestCheckShapeOpen(t *testing.T) {
	open := &Shape{Kind: KindObject, Open: true, Desc: "an object", Fields: []FieldShape{
		{Name: "mobile", Shape: ShapeString, Required: true},
		{Name: "radius", Shape: &Shape{Kind: KindNumber, Min: 0, Max: 100, Desc: "a number from 0 to 100"}},
	}}
	cases := []struct {
		in   string
		code string
	}{
		{`{"mobile":"+1"}`, ""},
		{`{"requestFrom":"portal","mobile":"+1"}`, ""},
		{`{"mobile":"+1","extra":{"a":[1,{"b":null}],"c":"}"},"more":[]}`, ""},
		{`{"x":1,"mobile":"+1","radius":5,"y":"z"}`, ""},
		{`{"requestFrom":"portal"}`, "missing_field"},
		{`{"extra":1,"mobile":5}`, "wrong_type"},
		{`{"mobile":"+1","radius":500,"extra":true}`, "invalid_field"},
		{`{"mobile":"+1","mobile":"+2","x":0}`, "duplicate_field"},
	}
	var c Checker
	for _, tc := range cases {
		ok := c.CheckSyntax([]byte(tc.in)) && c.CheckShape([]byte(tc.in), open)
		got := ""
		if !ok {
			got = c.Problem.String()
		}
		if got != tc.code {
			t.Errorf("%s: got %q (%s), want %q", tc.in, got, c.Msg, tc.code)
		}
	}
	closed := *open
	closed.Open = false
	in := []byte(`{"mobile":"+1","requestFrom":"portal"}`)
	if c.CheckSyntax(in) && c.CheckShape(in, &closed) {
		t.Error("a closed shape took an unknown member")
	}
}
