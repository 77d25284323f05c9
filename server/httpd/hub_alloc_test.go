//go:build !race

package httpd

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestAllocsHub: on a warm hub, holding a request costs no allocation:
// subscribing, publishing, waking (by a publish and by a deadline) and
// closing reuse the pooled waiter, its channel and its timer.
func TestAllocsHub(t *testing.T) {
	h := newHub(0)
	k := TopicKey('u', "org", "alice")
	other, _ := h.Subscribe(TopicKey('u', "org", "bob")) // a topic that stays
	defer other.Close()
	n := testing.AllocsPerRun(1000, func() {
		w, err := h.Subscribe(k)
		if err != nil {
			t.Fatal(err)
		}
		h.Publish(k)
		if r := w.Wait(time.Now().Add(time.Second)); r != WakePublished {
			t.Fatalf("woke with %v", r)
		}
		if r := w.Wait(time.Now().Add(time.Microsecond)); r != WakeTimeout {
			t.Fatalf("woke with %v", r)
		}
		w.Close()
	})
	if n != 0 {
		t.Errorf("subscribe, publish, wait and close: %v allocs", n)
	}
}

// TestAllocsHeldRequest: a request of a holding route, read wait, held
// and answered, allocates nothing on a warm server.
func TestAllocsHeldRequest(t *testing.T) {
	ts, _ := newTestServer(t, Config{})
	n := allocsPerRequest(t, ts.srv.Handler(), fasthttp.MethodGet, "/t/hold?k=alice&wait=0", 200, "timeout")
	if n != 0 {
		t.Errorf("held request: %v allocs", n)
	}
}

// allocsPerRequest serves one request to h, checks its answer, and
// returns the allocations of serving it again.
func allocsPerRequest(t *testing.T, h fasthttp.RequestHandler, method, uri string, status int, body string) float64 {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	h(&ctx)
	if ctx.Response.StatusCode() != status || string(ctx.Response.Body()) != body {
		t.Fatalf("%s %s: %d %q, want %d %q", method, uri, ctx.Response.StatusCode(), ctx.Response.Body(), status, body)
	}
	return testing.AllocsPerRun(1000, func() {
		ctx.Response.Reset()
		h(&ctx)
	})
}
