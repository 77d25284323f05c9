package native

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bytedance/sonic/decoder"

	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/server/httpd"
)

// validateBodies are validate bodies of every form the shape accepts:
// escapes in names and strings, nulls, empty and absent arrays, scalars of
// every kind as values, whitespace everywhere.
var validateBodies = []string{
	`{"cid":"c","csid":"s-000001","userID":"u","action":"pay"}`,
	`{"cid":"c","csid":"s","userID":"u","action":"a","isEnrollment":true,"additionalData":{"sessionData":[` +
		`{"key":"amount","value":"35.00","synonyms":["total","sum"]},{"key":"n","value":12.5e3},` +
		`{"key":"t","value":true},{"key":"f","value":false},{"key":"z","value":null,"synonyms":null},` +
		`{"key":"e","value":"","synonyms":[]},{"value":-0.0,"key":"order"}]}}`,
	` { "additionalData" : null , "isEnrollment" : false , "cid" : "c" , "csid" : "s" , "userID" : "u" , "action" : "" } `,
	`{"cid":"c","csid":"s","userID":"u","action":"a","additionalData":{}}`,
	`{"cid":"c","csid":"s","userID":"u","action":"a","additionalData":{"sessionData":null}}`,
	`{"cid":"c","csid":"s","userID":"u","action":"a","additionalData":{"sessionData":[]}}`,
	"{\"c\\u0069d\":\"\\u00e9t\\u00E9 \\ud83d\\ude00 x\\u00ff\",\"csid\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"," +
		"\"userID\":\"Jos\\u00e9\",\"action\":\"\\u0000\",\"additionalData\":{\"session\\u0044ata\":[" +
		"{\"k\\u0065y\":\"\\u0041mount\",\"value\":\"\\u0033\\u0035\",\"synonyms\":[\"\\u0074otal\",\"plain\"]}]}}",
	"{\"cid\":\"caf\u00e9 \U0001F600\",\"csid\":\"s\",\"userID\":\"u\",\"action\":\"a\"}",
	`{"cid":"c","csid":"s-000002","userID":"u"}`, // action is optional
}

// bindBoth binds body with sonic (into want) and with bindValidate through
// c (into got, reset first), after the checks validate runs. ok is false
// when the checks refuse the body.
func bindBoth(t testing.TB, c *reqCtx, body []byte) (want, got *validateRequest, ok bool) {
	if !c.Check.CheckSyntax(body) {
		return nil, nil, false
	}
	c.Body = body
	c.validateReq.reset()
	bound := c.bindValidate(&c.validateReq)
	if shaped := c.Check.CheckShape(body, shapeValidate); shaped != bound {
		t.Fatalf("checkShape says %v (%s), bindValidate %v, of\n%q", shaped, c.Check.Msg, bound, body)
	}
	if !bound {
		return nil, nil, false
	}
	want = new(validateRequest)
	var dec decoder.Decoder
	dec.Reset(string(body))
	dec.SetOptions(httpd.DecodeOptions)
	if err := dec.Decode(want); err != nil {
		t.Fatalf("sonic refused a checked body: %v\n%q", err, body)
	}
	return want, &c.validateReq, true
}

// render prints a request with nil and empty slices alike (sonic and the
// binder may differ there; validate only reads lengths).
func render(r *validateRequest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cid=%q csid=%q user=%q action=%q enroll=%v items=%d",
		r.CID, r.CSID, r.UserID, r.Action, r.IsEnrollment, len(r.AdditionalData.SessionData))
	for _, it := range r.AdditionalData.SessionData {
		fmt.Fprintf(&b, "\n  key=%q value=%q synonyms=%d %q", it.Key, []byte(it.Value), len(it.Synonyms), it.Synonyms)
	}
	return b.String()
}

// TestBindValidateAgreesWithSonic: every form of body binds as sonic binds
// it, in a fresh context and in one that bound a larger body before.
func TestBindValidateAgreesWithSonic(t *testing.T) {
	c := &reqCtx{}
	for _, order := range [][]string{validateBodies, reversed(validateBodies)} {
		for _, body := range order {
			want, got, ok := bindBoth(t, c, []byte(body))
			if !ok {
				t.Fatalf("the checks refused %q: %s", body, c.Check.Msg)
			}
			if w, g := render(want), render(got); w != g {
				t.Errorf("body %q\nsonic:  %s\nbinder: %s", body, w, g)
			}
		}
	}
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// TestBindValidateRefusesWhatCheckShapeRefuses: every kind of shape problem
// is refused by the binder as by checkShape (bindBoth fails the test when
// they disagree), and the server answers it with checkShape's message.
func TestBindValidateRefusesWhatCheckShapeRefuses(t *testing.T) {
	const head = `"cid":"c","csid":"s","userID":"u","action":"a"`
	many := func(n int, item string) string {
		return strings.TrimSuffix(strings.Repeat(item+",", n), ",")
	}
	c := &reqCtx{}
	for _, body := range []string{
		`[]`, `null`, `"x"`, `{}`,
		`{"cid":"c","csid":"s","action":"a"}`,
		`{` + head + `,"cid":"again"}`,
		`{` + head + `,"action":"again"}`,
		`{"cid":"c","csid":"s","userID":"u","action":null}`,
		`{` + head + `,"other":1}`,
		`{"cid":1,"csid":"s","userID":"u","action":"a"}`,
		`{"cid":null,"csid":"s","userID":"u","action":"a"}`,
		`{` + head + `,"isEnrollment":null}`,
		`{` + head + `,"isEnrollment":"true"}`,
		`{` + head + `,"additionalData":[]}`,
		`{` + head + `,"additionalData":{"other":[]}}`,
		`{` + head + `,"additionalData":{"sessionData":[],"sessionData":[]}}`,
		`{` + head + `,"additionalData":{"sessionData":{}}}`,
		`{` + head + `,"additionalData":{"sessionData":[null]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k"}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"value":1}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k","value":{}}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k","value":[1]}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":1,"value":1}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k","value":1,"key":"j"}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k","value":1,"other":1}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k","value":1,"synonyms":"s"}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k","value":1,"synonyms":[1]}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k","value":1,"synonyms":[null]}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k","value":1,"synonyms":[` + many(match.MaxSynonyms+1, `"s"`) + `]}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[` + many(match.MaxItems+1, `{"key":"k","value":1}`) + `]}}`,
	} {
		if _, _, ok := bindBoth(t, c, []byte(body)); ok {
			t.Errorf("accepted %q", body)
		}
	}
	// At the limits, accepted; and without the optional action.
	for _, body := range []string{
		`{"cid":"c","csid":"s","userID":"u"}`,
		`{` + head + `,"additionalData":{"sessionData":[{"key":"k","value":1,"synonyms":[` + many(match.MaxSynonyms, `"s"`) + `]}]}}`,
		`{` + head + `,"additionalData":{"sessionData":[` + many(match.MaxItems, `{"key":"k","value":1}`) + `]}}`,
	} {
		if _, _, ok := bindBoth(t, c, []byte(body)); !ok {
			t.Errorf("refused %q: %s", body, c.Check.Msg)
		}
	}
}

// FuzzBindValidate: the binder accepts exactly what checkShape accepts and
// binds it as sonic does, also into a context that bound another body
// before.
func FuzzBindValidate(f *testing.F) {
	for _, b := range validateBodies {
		f.Add([]byte(b))
	}
	c := &reqCtx{}
	f.Fuzz(func(t *testing.T, body []byte) {
		bindBoth(t, c, []byte(validateBodies[1])) // leave items behind
		want, got, ok := bindBoth(t, c, body)
		if !ok {
			return
		}
		if w, g := render(want), render(got); w != g {
			t.Fatalf("body %q\nsonic:  %s\nbinder: %s", body, w, g)
		}
	})
}
