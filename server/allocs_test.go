//go:build !race

package server

import (
	"bytes"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
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

// maxEventsPostAllocs pins what one events post of one frame allocates
// through the handler once warm, measured 7. Five are the request's: the
// session cache's new snapshots of the session (two for the frames' write,
// two for the aggregate's: store.ownSnapshot) and the store's digest
// scratch of the post; none grows with the post's frames. Two are Pebble's
// blob-file writer flushing frames in the background meanwhile
// (blob.FileWriter), which testing.AllocsPerRun counts too.
const maxEventsPostAllocs = 7

// maxFlushAllocsPerFrame bounds what each further frame of a post adds,
// measured 2 to 2.7: not the request's (a memory profile of this test puts no
// allocation per frame under the handler: decoding, checks, the stored
// encoding and the inline fold reuse the request context's buffers) but
// Pebble's memtable flushes and compactions writing the frames' bytes to
// tables, which testing.AllocsPerRun counts because they run meanwhile.
const maxFlushAllocsPerFrame = 4

// TestAllocsEventsPost: events posts of new 512-d frames, plain JSON (a
// compressed body adds only its pooled decompressor's state), from the
// client id to the answer (decode, checks, the synced store write, the
// inline scoring), on a store on disk, as served: a post of 1 frame
// allocates at most maxEventsPostAllocs, and each further frame of a post
// of 8 at most maxFlushAllocsPerFrame.
func TestAllocsEventsPost(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.QueueSize = 1 << 16 }),
		withStoreOptions(func(o *store.Options) { o.FS, o.Dir = vfs.Default, t.TempDir() }))
	rng := newRand(44)
	face := unitVec(rng, testDim)
	perPost := func(csid string, frames int) float64 {
		const posts = 450
		bodies := make([][]byte, posts)
		for i := range bodies {
			bodies[i] = mustJSON(eventsJSON{Frames: faceFrames(rng, face, uint64(i*frames)+1, 1763800000100+int64(i*frames)*400, frames)})
		}
		s := e.newSession(csid, "alice")
		h := e.srv.Handler()
		var ctx fasthttp.RequestCtx
		ctx.Init(&fasthttp.Request{}, nil, nil)
		q := &ctx.Request // Init copies: edit the context's own request
		q.Header.SetMethod("POST")
		q.Header.SetContentType("application/json")
		q.Header.Set("x-client-id", e.org.CID)
		q.Header.Set("x-collect-token", s.token)
		q.SetRequestURI("/v1/sessions/" + s.csid + "/events")
		i := 0
		post := func() {
			q.SetBodyRaw(bodies[i])
			i++
			ctx.Response.Reset()
			h(&ctx)
			if ctx.Response.StatusCode() != 202 || !bytes.HasSuffix(ctx.Response.Body(), []byte(`"pending":0}`)) {
				t.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
		for range 100 {
			post()
		}
		return testing.AllocsPerRun(300, post)
	}
	one := perPost("allocs-events-1", 1)
	eight := perPost("allocs-events-8", 8)
	t.Logf("%.2f allocs per events post of 1 frame, %.2f of 8", one, eight)
	if perFrame := (eight - one) / 7; perFrame > maxFlushAllocsPerFrame {
		t.Errorf("a post of 8 frames allocates %.2f, one of 1 frame %.2f: %.2f per frame, want <= %d", eight, one, perFrame, maxFlushAllocsPerFrame)
	}
	if one > maxEventsPostAllocs {
		t.Errorf("events post: %.2f allocs, want <= %d", one, maxEventsPostAllocs)
	}
}
