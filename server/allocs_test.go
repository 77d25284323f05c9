//go:build !race

package server

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/httpd"
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

func TestAllocsSendAndMetrics(t *testing.T) {
	e := newEnv(t)
	var c httpd.Ctx
	var ctx fasthttp.RequestCtx
	c.Start(e.srv.core, &ctx, routeOpenAPI)
	c.Out = append(c.Out[:0], openAPIDocument()[:2000]...)
	for _, enc := range []string{"", "gzip", "zstd"} {
		ctx.Request.Header.Set("Accept-Encoding", enc)
		n := testing.AllocsPerRun(100, func() {
			ctx.Response.Reset()
			c.Status = 200
			c.Send()
			e.srv.core.Metrics().Observe(routeOpenAPI, 200, time.Now())
		})
		if n != 0 {
			t.Errorf("send with Accept-Encoding %q: %v allocs", enc, n)
		}
	}
}
