package server

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/store"
)

// benchEnv is a server with one enrolled user and one session whose values
// and frames are stored and scored: the steady state of a validate. The
// benchmarks and TestAllocsValidateHandler share it.
//
// Its in-memory store syncs without the WAL's pause between syncs
// (store.DefaultWALSyncInterval), which on a file system whose sync costs
// nothing would make every sequential validate wait for a timer (about
// 1.1 ms here): so ns/op is the CPU a validate costs, the figure an
// optimization moves.
func benchEnv(b testing.TB) (*testEnv, []byte) {
	b.Helper()
	e := newEnv(b, withStoreOptions(func(so *store.Options) { so.WALSyncInterval = -1 }))
	rng := newRand(42)
	face := unitVec(rng, testDim)
	enroll := e.newSession("bench-enroll-1", "alice")
	e.postEvents(enroll, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 8)}))
	if r := e.validateWhenScored(e.validateBody(enroll, true, seedItems()...)); r.status != 200 {
		b.Fatalf("enroll: %s", r)
	}
	s := e.newSession("bench-session-1", "alice")
	e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 8)}))
	body := e.validateBody(s, false, seedItems()...)
	if r := e.validateWhenScored(body); r.status != 200 || parseVerdictB(r) != true {
		b.Fatalf("validate: %s", r)
	}
	return e, body
}

func parseVerdictB(r response) bool {
	return len(r.body) > 0 && string(r.body[:40]) == `{"success":true,"verifiedAction":true,"d`
}

// BenchmarkValidateInmemory is validate through the whole stack: a fasthttp
// client and server over fasthttputil's in-memory listener, the handler, the
// engine and the store (in-memory Pebble). allocs/op counts both ends.
func BenchmarkValidateInmemory(b *testing.B) {
	e, body := benchEnv(b)
	c := &fasthttp.HostClient{Addr: "countersign.test", Dial: func(string) (net.Conn, error) { return e.ln.Dial() }, MaxConns: 1}
	q := fasthttp.AcquireRequest()
	p := fasthttp.AcquireResponse()
	q.Header.SetMethod("POST")
	q.SetRequestURI("http://countersign.test/v1/validate")
	q.Header.SetContentType("application/json")
	q.Header.Set("apikey", e.apiKey)
	q.SetBody(body)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Do(q, p); err != nil || p.StatusCode() != 200 {
			b.Fatalf("%v %d %s", err, p.StatusCode(), p.Body())
		}
	}
}

// BenchmarkValidateHandler is the server's share: the handler called
// directly on a reused fasthttp.RequestCtx, no connection.
func BenchmarkValidateHandler(b *testing.B) {
	e, body := benchEnv(b)
	validate := validateOnHandler(b, e, body)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		validate()
	}
}

// validateOnHandler returns a function that answers one validate of body
// by calling the server's handler on a reused fasthttp.RequestCtx, and
// fails tb unless it answers 200.
func validateOnHandler(tb testing.TB, e *testEnv, body []byte) func() {
	h := e.srv.Handler()
	ctx := new(fasthttp.RequestCtx)
	var q fasthttp.Request
	q.Header.SetMethod("POST")
	q.SetRequestURI("/v1/validate")
	q.Header.SetContentType("application/json")
	q.Header.Set("apikey", e.apiKey)
	q.SetBody(body)
	ctx.Init(&q, nil, nil)
	return func() {
		ctx.Response.Reset()
		h(ctx)
		if ctx.Response.StatusCode() != 200 {
			tb.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkEventsHandler: one events request with 8 frames of 512-d
// embeddings (the handler, the store write and the scoring job).
func BenchmarkEventsHandler(b *testing.B) {
	e := newEnv(b, withConfig(func(c *Config) { c.QueueSize = 1 << 16 }))
	rng := newRand(43)
	face := unitVec(rng, testDim)
	h := e.srv.Handler()
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, nil, nil)
	q := &ctx.Request // Init copies: edit the context's own request
	q.Header.SetMethod("POST")
	q.Header.SetContentType("application/json")
	q.Header.Set("x-client-id", e.org.CID)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i%500 == 0 { // a session holds at most 4096 frames
			b.StopTimer()
			s := e.newSession("bench-events-"+time.Now().Format("150405.000000000"), "alice")
			q.SetRequestURI("/v1/sessions/" + s.csid + "/events")
			q.Header.Set("x-collect-token", s.token)
			b.StartTimer()
		}
		b.StopTimer()
		q.SetBody(mustJSON(eventsJSON{Frames: faceFrames(rng, face, uint64(i%500)*8+1, 1763800000100+int64(i%500)*3200, 8)}))
		b.StartTimer()
		ctx.Response.Reset()
		h(&ctx)
		if ctx.Response.StatusCode() != 202 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		i++
	}
}

// BenchmarkValidateIdempotencyKey: the handler with a fresh Idempotency-Key
// on every request, as a careful client sends them: the key's lookup (a
// miss) and its record, written in the decision's batch.
func BenchmarkValidateIdempotencyKey(b *testing.B) {
	e, body := benchEnv(b)
	h := e.srv.Handler()
	ctx := new(fasthttp.RequestCtx)
	var q fasthttp.Request
	q.Header.SetMethod("POST")
	q.SetRequestURI("/v1/validate")
	q.Header.SetContentType("application/json")
	q.Header.Set("apikey", e.apiKey)
	q.SetBody(body)
	ctx.Init(&q, nil, nil)
	key := []byte("idem-bench-0000000000")
	b.ReportAllocs()
	b.ResetTimer()
	i := uint64(0)
	for b.Loop() {
		i++
		for j, v := len(key)-1, i; j >= len(key)-10; j, v = j-1, v/10 {
			key[j] = byte('0' + v%10)
		}
		ctx.Request.Header.SetBytesV("Idempotency-Key", key)
		ctx.Response.Reset()
		h(ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
