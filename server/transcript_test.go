package server

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/internal/httptranscript"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// The glue between the native transcripts and this package's server, kept
// in one place: a fresh server and store per file, served on a loopback
// socket, and the commands a transcript needs beyond sending requests.
//
//	advance by=DURATION          move the fake clock on (sessions expire)
//	hold-workers                 frames queue for scoring but no worker takes them
//	release-workers              hand the held jobs to the workers; wait until every
//	                             queued job is done (also without hold-workers)
//	fill-queue, drain-queue      take every free place of the scoring queue; give them back
//	embedding name=V seed=N [of=W noise=F]
//	                             $V: a unit face embedding (base64, D float32),
//	                             random from seed N, or $W's face with noise F
//	store-frames csid=C n=N      store N frames in session C directly, as the store
//	                             would hold them after N were accepted (4096 frames
//	                             over HTTP would be 64 requests)
//	break-store                  make every later write to the store's log fail
//	user id=U                    create the user U in the file's organization
//
// Variables: $cid and $apikey of the file's organization, $otherCID and
// $otherKey of a second one. A request with the header x-test-panic: 1
// makes the handler panic (the 500 answer). Masked in every answer:
// decisionID, collectToken, expiresAt, createdAt, approvalID, decidedAt. The server's env is
// returned too, for a surface's test to add its own variables and commands.
func newTranscriptRunner(t *testing.T, opts ...envOption) (*httptranscript.Runner, *testEnv) {
	wal := &walFailure{}
	e := newEnv(t, append([]envOption{
		withStoreFS(errorfs.Wrap(vfs.NewMem(), wal)),
		withHook(func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Request.Header.Peek("x-test-panic")) == "1" {
				panic("transcript: x-test-panic")
			}
		})}, opts...)...)
	other, otherKey, err := e.db.CreateOrg("other", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &httptranscript.Runner{
		Addr: e.serveTCP(),
		Mask: []string{"decisionID", "collectToken", "expiresAt", "createdAt", "approvalID", "decidedAt"},
	}
	r.Set("cid", e.org.CID, false)
	r.Set("apikey", e.apiKey, false)
	r.Set("otherCID", other.CID, false)
	r.Set("otherKey", otherKey, false)

	frames := e.srv.native.Frames()
	held := false // the workers paused by hold-workers
	t.Cleanup(func() {
		if held {
			frames.Resume()
		}
	})
	reserved := 0
	faces := map[string][]float32{}
	r.Commands = map[string]func(testing.TB, *datadriven.TestData) string{
		"advance": func(t testing.TB, d *datadriven.TestData) string {
			var by string
			d.ScanArgs(t, "by", &by)
			dur, err := time.ParseDuration(by)
			if err != nil {
				d.Fatalf(t, "advance by=%s: %v", by, err)
			}
			e.advance(dur)
			return "now " + e.clock().UTC().Format(time.RFC3339)
		},
		"hold-workers": func(t testing.TB, d *datadriven.TestData) string {
			frames.Pause()
			held = true
			return "held"
		},
		"release-workers": func(t testing.TB, d *datadriven.TestData) string {
			frames.Resume()
			held = false
			e.waitQueue(int64(reserved))
			return "every queued job done"
		},
		"fill-queue": func(t testing.TB, d *datadriven.TestData) string {
			for frames.Depth() < frames.Capacity() && frames.Reserve() {
				reserved++
			}
			return fmt.Sprintf("%d of %d places taken", frames.Depth(), frames.Capacity())
		},
		"drain-queue": func(t testing.TB, d *datadriven.TestData) string {
			for ; reserved > 0; reserved-- {
				frames.Unreserve()
			}
			return fmt.Sprintf("%d of %d places taken", frames.Depth(), frames.Capacity())
		},
		"embedding": func(t testing.TB, d *datadriven.TestData) string {
			var name string
			var seed uint64
			d.ScanArgs(t, "name", &name)
			d.ScanArgs(t, "seed", &seed)
			v := unitVec(newRand(seed), testDim)
			if d.HasArg("of") {
				var of string
				var noise float64
				d.ScanArgs(t, "of", &of)
				d.ScanArgs(t, "noise", &noise)
				if faces[of] == nil {
					d.Fatalf(t, "embedding of=%s: no such embedding", of)
				}
				v = noisy(newRand(seed), faces[of], noise)
			}
			faces[name] = v
			r.Set(name, embB64(v), true)
			return fmt.Sprintf("$%s: %d float32", name, len(v))
		},
		"store-frames": func(t testing.TB, d *datadriven.TestData) string {
			var csid string
			var n int
			d.ScanArgs(t, "csid", &csid)
			d.ScanArgs(t, "n", &n)
			f := biometric.Frame{Type: biometric.FaceFrame, Faces: 1, Quality: 0.9, Liveness: 0.9,
				Embedding: embBytes(unitVec(newRand(1), testDim))}
			var blobs [][]byte
			for i := range n {
				f.Seq, f.TS = uint64(i+1), 1763800000000+int64(i)*100
				blobs = append(blobs, biometric.AppendFrame(nil, &f))
				if len(blobs) == 256 || i == n-1 {
					if _, err := e.db.AppendEvents(e.org.ID, csid, nil, blobs, false); err != nil {
						d.Fatalf(t, "store-frames: %v", err)
					}
					blobs = blobs[:0]
				}
			}
			return fmt.Sprintf("%d frames stored", n)
		},
		"user": func(t testing.TB, d *datadriven.TestData) string {
			var id string
			d.ScanArgs(t, "id", &id)
			if _, err := e.db.CreateUser(e.org.ID, store.User{UserID: id}); err != nil {
				d.Fatalf(t, "user id=%s: %v", id, err)
			}
			return "user " + id
		},
		"break-store": func(t testing.TB, d *datadriven.TestData) string {
			e.closeErrOK = true
			wal.On()
			return "writes to the log fail"
		},
	}
	return r, e
}

// waitQueue waits until every queued job is done: the queue then holds
// only the places a transcript took itself (reserved).
func (e *testEnv) waitQueue(reserved int64) {
	frames := e.srv.native.Frames()
	for deadline := time.Now().Add(20 * time.Second); frames.Depth() > reserved; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatalf("the scoring queue still holds %d jobs", frames.Depth())
		}
	}
}

const transcriptDir = "../fixtures/http/native"

// TestTranscripts runs the native surface's HTTP transcripts, one fresh
// server and store per file. go test -run TestTranscripts -rewrite
// regenerates the answers (read them before committing).
func TestTranscripts(t *testing.T) {
	datadriven.Walk(t, transcriptDir, func(t *testing.T, path string) {
		r, _ := newTranscriptRunner(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string { return r.Run(t, d) })
	})
}

// transcriptDirs are the transcripts of every surface served here; each
// has an errors.txt.
var transcriptDirs = []string{transcriptDir, adminTranscriptDir, deviceTranscriptDir, ivaltTranscriptDir}

// TestTranscriptsCoverCatalog: every code of the error catalog is answered
// in some transcript of some surface, or an errors.txt names the test that
// provokes it (for the few no transcript can reach on a plain socket,
// deterministically), and that test exists. A new code cannot be left out.
func TestTranscriptsCoverCatalog(t *testing.T) {
	var all strings.Builder
	// "#   code: TestName (file_test.go) ..." lines of errors.txt's list.
	elsewhere := map[string]string{}
	for _, dir := range transcriptDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no transcripts in %s: %v", dir, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all.Write(b)
		}
		errorsTxt, err := os.ReadFile(filepath.Join(dir, "errors.txt"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^#\s+([a-z0-9_]+): (Test[A-Za-z0-9_]+) \(`).FindAllStringSubmatch(string(errorsTxt), -1) {
			elsewhere[m[1]] = m[2]
		}
	}
	var tests strings.Builder
	testFiles, _ := filepath.Glob("*_test.go")
	for _, f := range testFiles {
		b, _ := os.ReadFile(f)
		tests.Write(b)
	}
	// testBody is the source of the named test function, up to the next
	// top-level declaration.
	testBody := func(name string) (string, bool) {
		src := tests.String()
		i := strings.Index(src, "\nfunc "+name+"(t *testing.T)")
		if i < 0 {
			return "", false
		}
		body := src[i+1:]
		if j := strings.Index(body, "\n}\n"); j >= 0 {
			body = body[:j]
		}
		return body, true
	}
	known := map[string]bool{}
	for _, e := range httpd.Catalog() {
		known[e.Code] = true
		answered := strings.Contains(all.String(), `"errorCode":"`+e.Code+`"`)
		test, listed := elsewhere[e.Code]
		switch {
		case answered && listed:
			t.Errorf("%s is answered in a transcript and also listed in errors.txt as covered by %s", e.Code, test)
		case !answered && !listed:
			t.Errorf("%s (%d) has no transcript under %s and is not listed in an errors.txt with the test that covers it",
				e.Code, e.Status, strings.Join(transcriptDirs, " or "))
		case listed:
			body, ok := testBody(test)
			if !ok {
				t.Errorf("errors.txt says %s covers %s, but there is no such test", test, e.Code)
			} else if !strings.Contains(body, e.Code) {
				t.Errorf("errors.txt says %s covers %s, but that test does not name the code", test, e.Code)
			}
		}
	}
	for code := range elsewhere {
		if !known[code] {
			t.Errorf("errors.txt lists %s, which is not in the catalog", code)
		}
	}
}
