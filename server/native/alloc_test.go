//go:build !race

package native

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/engine/policy"
	"github.com/countersign/countersign/server/jsonwire"
)

func TestAllocsDecodeValidate(t *testing.T) {
	// The documented validate body of a session, with the seed's sessionData.
	body := []byte(`{"action":"wire_transfer","additionalData":{"sessionData":[` +
		`{"key":"amount","synonyms":["total","sum"],"value":35},{"key":"payeeID","synonyms":["payee"],"value":6},` +
		`{"key":"accountNumber","synonyms":["account"],"value":"66666666"},{"key":"notes","synonyms":["memo"],"value":"Wire transfer"}]},` +
		`"cid":"cid_0123456789abcdef","csid":"allocs-00001","isEnrollment":false,"userID":"u1"}`)
	c := &reqCtx{}
	c.RC = &fasthttp.RequestCtx{}
	n := testing.AllocsPerRun(200, func() {
		c.Body = append(c.Body[:0], body...)
		c.validateReq.reset()
		if !c.decodeValidate(&c.validateReq) {
			t.Fatalf("decode: %s", c.Out)
		}
	})
	if n != 0 {
		t.Errorf("decode validate: %v allocs", n)
	}
}

func TestAllocsEncodeValidate(t *testing.T) {
	c := &reqCtx{}
	c.verdict = policy.Verdict{
		Violations: []policy.ViolationCount{{Kind: biometric.FaceMismatch, Count: 2, FirstSeq: 3}},
		Info:       []policy.TypeInfo{{Type: biometric.FaceFrame, Frames: 8, Verified: 6, MeanSimilarity: 0.8312, MeanLiveness: 0.97}},
		Score:      8750,
	}
	c.mres.Details = append(c.mres.Details[:0], matchDetail("amount", "total"), matchDetail("notes", ""))
	n := testing.AllocsPerRun(200, func() {
		c.rec = appendDecisionRecord(c.rec[:0], &c.verdict, c.mres.Details)
		c.Out, _ = AppendValidateAnswer(c.Out[:0], c.rec, "01JBZ8Q3Y00000000000000000")
	})
	if n != 0 {
		t.Errorf("encode validate: %v allocs", n)
	}
}

func TestAllocsJSONCheck(t *testing.T) {
	body := []byte(`{"cid":"c","csid":"abcdefgh","userID":"u","action":"a","additionalData":{"sessionData":[{"key":"amount","value":35,"synonyms":["total","sum"]},{"key":"n","value":"Wire \u00e9 transfer"}]},"isEnrollment":false}`)
	var c jsonwire.Checker
	n := testing.AllocsPerRun(200, func() {
		if !c.CheckSyntax(body) || !c.CheckShape(body, shapeValidate) {
			t.Fatal(string(c.Msg))
		}
	})
	if n != 0 {
		t.Errorf("json checks: %v allocs", n)
	}
}

func matchDetail(key, field string) match.Detail {
	d := match.Detail{Key: []byte(key), Matched: field != "", Reason: match.NotCollected}
	if field != "" {
		d.Field, d.Reason = []byte(field), match.Match
	}
	return d
}
