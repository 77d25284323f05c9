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
	n := allocsPerRequest(t, ts.srv.Handler(), fasthttp.MethodPost, "/t/work", 503, "test:overloaded")
	if n != 0 {
		t.Errorf("shed: %v allocs per refusal", n)
	}
}
