//go:build !race

package httpd

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestAllocsShed: refusing a request over the bound allocates nothing, its
// hold included: the refusal must cost less than serving, or refusals
// under overload take the CPU the admitted requests need.
func TestAllocsShed(t *testing.T) {
	ts, _ := newTestServer(t, Config{MaxInFlight: 1, ShedHold: time.Microsecond})
	ts.srv.Admission().inFlight.Store(1)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetRequestURI("/t/work")
	h := ts.srv.Handler()
	h(&ctx)
	if ctx.Response.StatusCode() != 503 || string(ctx.Response.Body()) != "test:overloaded" {
		t.Fatalf("not shed: %d %q", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	n := testing.AllocsPerRun(1000, func() {
		ctx.Response.Reset()
		h(&ctx)
	})
	if n != 0 {
		t.Errorf("shed: %v allocs per refusal", n)
	}
}
