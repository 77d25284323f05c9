package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/countersign/countersign/store"
	"github.com/countersign/countersign/store/fullfs"
)

// TestFullDiskAnswersStorageFull fills the store's disk with 64-frame
// events from four clients on a loopback socket, as the disk of a real
// server fills: no request waits past a bound, the writes after the disk
// filled are answered 503 storage_full, reads too, /readyz turns 503 and
// Failed closes (serve's cue to exit 1), the failure is logged once, not
// per request, shutdown and the store's close are prompt, and after a
// crash and a restart with space every event answered 202 is there. The
// disk fills under the log, or (the log writing on in space it holds)
// under a flush's table, which no request writes.
func TestFullDiskAnswersStorageFull(t *testing.T) {
	const code = "storage_full" // the answer to every request that uses the store
	t.Run("log", func(t *testing.T) { testFullDiskServer(t, fullfs.New(vfs.NewCrashableMem(), 6<<20), code) })
	t.Run("tables", func(t *testing.T) {
		disk := fullfs.New(vfs.NewCrashableMem(), 1<<20)
		disk.Exempt(".log")
		testFullDiskServer(t, disk, code)
	})
}

func testFullDiskServer(t *testing.T, disk *fullfs.FS, code string) {
	mem := disk.Unwrap().(*vfs.MemFS)
	e := newEnv(t, withBrokenStore(disk))
	e.useTCP()
	face := unitVec(newRand(1), testDim)

	const clients = 4
	const framesPerPost = 64
	var (
		mu      sync.Mutex
		acked   []string // csids whose events were answered 202
		refused []response
		slowest time.Duration
		wg      sync.WaitGroup
	)
	body := mustJSON(eventsJSON{Frames: faceFrames(newRand(2), face, 0, e.clock().UnixMilli(), framesPerPost)})
	filling := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				csid := fmt.Sprintf("full-%d-%04d", c, i)
				start := time.Now()
				r := e.do(req{path: "/v1/sessions", body: mustJSON(map[string]any{"csid": csid, "userID": "u1", "action": "wire_transfer"}),
					headers: []string{"x-client-id", e.org.CID}})
				if r.status == 201 {
					s := session{csid: csid, token: jsonMap(t, r.body)["collectToken"].(string), userID: "u1"}
					r = e.postEvents(s, body)
				}
				mu.Lock()
				slowest = max(slowest, time.Since(start))
				switch r.status {
				case 202:
					acked = append(acked, csid)
				case 201:
				default:
					refused = append(refused, r)
				}
				mu.Unlock()
				if r.status != 201 && r.status != 202 {
					return
				}
			}
			t.Errorf("client %d: the disk never filled", c)
		}()
	}
	wg.Wait()
	t.Logf("filled in %v", time.Since(filling))
	if slowest > 3*time.Second {
		t.Errorf("the slowest request took %v; a full disk must be answered at once", slowest)
	}
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged before the disk filled")
	}
	for _, r := range refused {
		if r.status != 503 || r.errorCode() != code || r.header["retry-after"] == "" {
			t.Errorf("a write once the disk is full: %s %v", r, r.header)
		}
	}
	select {
	case <-e.srv.Failed():
	case <-time.After(2 * time.Second):
		t.Fatal("Failed() not closed after the disk filled")
	}
	if r := e.do(req{path: "/readyz"}); r.status != 503 {
		t.Errorf("readyz with a full disk: %s", r)
	}
	if r := e.do(req{path: "/healthz"}); r.status != 200 {
		t.Errorf("healthz with a full disk: %s", r)
	}
	if r := e.do(req{path: "/v1/sessions/" + acked[0], headers: e.withKey()}); r.status != 503 || r.errorCode() != code {
		t.Errorf("a read with a full disk: %s", r)
	}
	// More requests add no log lines.
	var late sync.WaitGroup
	for i := 0; i < 50; i++ {
		late.Add(1)
		go func() {
			defer late.Done()
			e.do(req{path: "/v1/sessions", body: mustJSON(map[string]any{"csid": fmt.Sprintf("late-%04d", i), "userID": "u1", "action": "a"}),
				headers: []string{"x-client-id", e.org.CID}})
		}()
	}
	late.Wait()
	var errLines []string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) == 0 || len(errLines) > 4 {
		t.Errorf("%d error lines for one full disk, want 1 to 4:\n%s", len(errLines), strings.Join(errLines, "\n"))
	}

	start := time.Now()
	e.stop()
	err := e.db.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown and close with a full disk took %v", d)
	}
	t.Logf("%d events acknowledged, %d refused (%d ENOSPC), %d error lines, close: %v",
		len(acked), len(refused), disk.Refused(), len(errLines), err)

	db, err := store.Open(store.Options{Dir: "data", FS: mem.CrashClone(vfs.CrashCloneCfg{}), Now: e.clock})
	if err != nil {
		t.Fatalf("reopen with space: %v", err)
	}
	defer db.Close()
	for _, csid := range acked {
		s, err := db.Session(e.org.ID, csid)
		if err != nil || s.FramesReceived != framesPerPost {
			t.Fatalf("acknowledged events of %s after the restart: %+v, %v", csid, s, err)
		}
	}
}
