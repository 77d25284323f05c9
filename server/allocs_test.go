//go:build !race

package server

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/engine/policy"
	"github.com/countersign/countersign/server/jsonwire"
)

// The server's own work on the validate path allocates nothing once its
// pooled context has grown: decoding (both checks and sonic), matching,
// evaluating, encoding, compressing, metrics. Neither does the store's, with
// the organization cached and the session, fields, template and decision id
// read and written through reused buffers: TestAllocsValidateHandler checks
// the whole request.

// maxValidateAllocs is issue 4's budget for one validate request through
// the server. Measured today: 0 (BenchmarkValidateHandler).
const maxValidateAllocs = 2

// TestAllocsValidateHandler: one validate through the handler, from the
// apikey header to the response body (auth, decode, session, fields,
// template, match, evaluate, encode, the synced decision write), allocates
// at most maxValidateAllocs once warm. The warm-up stores enough decisions
// for Pebble to flush its memtable, so that the reads reach sstables as
// they do in a server that has run for a while.
func TestAllocsValidateHandler(t *testing.T) {
	if testing.Short() {
		t.Skip("stores a few thousand decisions")
	}
	e, body := benchEnv(t)
	validate := validateOnHandler(t, e, body)
	for range 4000 {
		validate()
	}
	n := testing.AllocsPerRun(500, validate)
	t.Logf("%.1f allocs per validate", n)
	if n > maxValidateAllocs {
		t.Errorf("validate: %.1f allocs per request, want <= %d", n, maxValidateAllocs)
	}
}

func TestAllocsDecodeValidate(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("allocs-00001", "u1")
	body := e.validateBody(s, false, seedItems()...)
	c := newReqCtx(e.srv)
	c.ctx = &fasthttp.RequestCtx{}
	n := testing.AllocsPerRun(200, func() {
		c.body = append(c.body[:0], body...)
		c.validateReq.reset()
		if !c.decode(shapeValidate, &c.validateReq) {
			t.Fatalf("decode: %s", c.out)
		}
	})
	if n != 0 {
		t.Errorf("decode validate: %v allocs", n)
	}
}

func TestAllocsEncodeValidate(t *testing.T) {
	e := newEnv(t)
	c := newReqCtx(e.srv)
	c.verdict = policy.Verdict{
		Violations: []policy.ViolationCount{{Kind: biometric.FaceMismatch, Count: 2, FirstSeq: 3}},
		Info:       []policy.TypeInfo{{Type: biometric.FaceFrame, Frames: 8, Verified: 6, MeanSimilarity: 0.8312, MeanLiveness: 0.97}},
		Score:      8750,
	}
	c.mres.Details = append(c.mres.Details[:0], matchDetail("amount", "total"), matchDetail("notes", ""))
	n := testing.AllocsPerRun(200, func() {
		c.rec = appendDecisionRecord(c.rec[:0], &c.verdict, c.mres.Details)
		c.out, _ = appendValidateAnswer(c.out[:0], c.rec, "01JBZ8Q3Y00000000000000000")
	})
	if n != 0 {
		t.Errorf("encode validate: %v allocs", n)
	}
}

func TestAllocsSendAndMetrics(t *testing.T) {
	e := newEnv(t)
	c := newReqCtx(e.srv)
	var ctx fasthttp.RequestCtx
	c.ctx = &ctx
	c.out = append(c.out[:0], openAPIDocument()[:2000]...)
	for _, enc := range []string{"", "gzip", "zstd"} {
		ctx.Request.Header.Set("Accept-Encoding", enc)
		n := testing.AllocsPerRun(100, func() {
			ctx.Response.Reset()
			c.status = 200
			c.send()
			e.srv.metrics.observe(routeValidate, 200, time.Now())
		})
		if n != 0 {
			t.Errorf("send with Accept-Encoding %q: %v allocs", enc, n)
		}
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
