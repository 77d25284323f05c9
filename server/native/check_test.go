package native

import (
	"strings"
	"testing"

	"github.com/countersign/countersign/server/jsonwire"
)

func TestCheckShape(t *testing.T) {
	cases := []struct {
		in   string
		code string
		says string
	}{
		{`{"cid":"c","csid":"s","userID":"u","action":"a"}`, "", ""},
		{`{"cid":"c","csid":"s","userID":"u","action":"a","additionalData":null,"isEnrollment":true}`, "", ""},
		{`{"cid":"c","csid":"s","userID":"u","action":"a","additionalData":{"sessionData":null}}`, "", ""},
		{`{"cid":"c","csid":"s","userID":"u","action":"a","additionalData":{"sessionData":[{"key":"k","value":null,"synonyms":null}]}}`, "", ""},
		{`{"cid":"c","csid":"s","userID":"u","action":"a","additionalData":{}}`, "", ""},
		{`{"cid":null,"csid":"s","userID":"u","action":"a"}`, "wrong_type", "cid must be a string, not null"},
		{`{"csid":"s","userID":"u","action":"a"}`, "missing_field", "cid is required"},
		{`{"cid":"c","csid":"s","userID":"u","action":"a","additionalData":{"sessionData":[{"key":"k"}]}}`, "missing_field", "additionalData.sessionData[0].value is required"},
		{`{"cid":"c","csid":"s","userID":"u","action":"a","isEnrollment":1}`, "wrong_type", "isEnrollment must be true or false, not a number"},
		{`{"cid":"c","csid":"s","userID":"u","action":"a","\u0063id":"d"}`, "duplicate_field", "appears twice"},
		{`{"cid":"c","csid":"s","userID":"u","action":"a","x":1}`, "unknown_field", "unknown field x"},
	}
	var c jsonwire.Checker
	for _, tc := range cases {
		if !c.CheckSyntax([]byte(tc.in)) {
			t.Fatalf("syntax %s: %s", tc.in, c.Msg)
		}
		ok := c.CheckShape([]byte(tc.in), shapeValidate)
		code := ""
		if !ok {
			code = c.Problem.String()
		}
		if code != tc.code || !strings.Contains(string(c.Msg), tc.says) {
			t.Errorf("checkShape(%s) = %q %q, want %q containing %q", tc.in, code, c.Msg, tc.code, tc.says)
		}
	}
	// Integer ranges.
	ints := []struct {
		sh   *jsonwire.Shape
		in   string
		code string
	}{
		{jsonwire.ShapeInt64, "9223372036854775807", ""},
		{jsonwire.ShapeInt64, "-9223372036854775808", ""},
		{jsonwire.ShapeInt64, "9223372036854775808", "invalid_field"},
		{jsonwire.ShapeInt64, "-9223372036854775809", "invalid_field"},
		{jsonwire.ShapeUint64, "18446744073709551615", ""},
		{jsonwire.ShapeUint64, "18446744073709551616", "invalid_field"},
		{jsonwire.ShapeUint64, "-1", "invalid_field"},
		{jsonwire.ShapeUint64, "-0", "invalid_field"}, // sonic does not bind -0 to an unsigned field
		{jsonwire.ShapeUint64, "1e3", "wrong_type"},
		{jsonwire.ShapeUint64, "1.0", "wrong_type"},
	}
	for _, tc := range ints {
		obj := &jsonwire.Shape{Kind: jsonwire.KindObject, Fields: []jsonwire.FieldShape{{Name: "n", Shape: tc.sh}}}
		in := `{"n":` + tc.in + `}`
		ok := c.CheckShape([]byte(in), obj)
		code := ""
		if !ok {
			code = c.Problem.String()
		}
		if code != tc.code {
			t.Errorf("%s as %s: %q %s", tc.in, tc.sh.Desc, code, c.Msg)
		}
	}
}
