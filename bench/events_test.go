package bench

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// TestEventsOpPostsFreshFrames: once a session's pre-built bodies are used,
// every further post carries new sequence numbers. Re-posting a body would be
// a re-delivery the server acknowledges without storing, and the events phase
// would measure retries instead of ingestion.
func TestEventsOpPostsFreshFrames(t *testing.T) {
	op := EventsOp("127.0.0.1:1", "cid", []EventSession{testEventSession()}, 3)
	var req fasthttp.Request
	op.Prepare(0, &req)
	if string(req.Body()) != "first body" {
		t.Fatalf("post 0 is not the pre-built body: %q", req.Body())
	}
	seen := map[string]bool{}
	for i := uint64(1); i <= 3; i++ {
		op.Prepare(i, &req)
		zr, err := gzip.NewReader(bytes.NewReader(req.Body()))
		if err != nil {
			t.Fatal(err)
		}
		js, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		body := string(js)
		for j := uint64(1); j <= 3; j++ {
			want := `"seq":` + strconv.FormatUint(i*3+j, 10) + `,`
			if !strings.Contains(body, want) {
				t.Errorf("post %d lacks %s: %.120s", i, want, body)
			}
		}
		if seen[body] {
			t.Errorf("post %d repeats an earlier post", i)
		}
		seen[body] = true
	}
}

// TestEventsOpPostsFreshFramesAcrossRuns: a run numbers its requests from 0,
// and the overload scenario runs the same events op three times (closed
// loop, unloaded, overload). A later run must not re-send the first run's
// posts: each would be a re-delivery, answered without a write, and the
// unloaded p99 and the overload's admitted p99 would be those of retries.
func TestEventsOpPostsFreshFramesAcrossRuns(t *testing.T) {
	op := EventsOp("127.0.0.1:1", "cid", []EventSession{testEventSession()}, 3)
	seen := map[string]bool{}
	var req fasthttp.Request
	for run := range 3 {
		for i := uint64(0); i < 2; i++ { // each run's requests are numbered from 0
			op.Prepare(i, &req)
			body := string(req.Body())
			if seen[body] {
				t.Fatalf("run %d, request %d repeats a post of an earlier run", run, i)
			}
			seen[body] = true
		}
	}
}

// testEventSession is an events session with one pre-built body ("first
// body") and three genuine frames to build fresh posts from.
func testEventSession() EventSession {
	faces := simulate.NewFaces(8, 1)
	id := faces.Identity(1)
	s := EventSession{CSID: "ev-0001", CollectToken: "tok", TS0: 1763800000000,
		Bodies: [][]byte{[]byte("first body")}}
	for seq := uint64(1); seq <= 3; seq++ {
		s.Frames = append(s.Frames, client.Frame{Seq: seq, Type: "face", Faces: 1, Quality: 0.9, Liveness: 0.95, Embedding: faces.Genuine(id)})
	}
	return s
}
