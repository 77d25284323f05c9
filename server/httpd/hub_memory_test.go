//go:build !race

package httpd

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// The memory figure means nothing under the race detector, which more than
// doubles what each goroutine and allocation costs, and the 10,000
// connections it opens are slow to serve there; the hub's own behaviour
// under -race is in hub_test.go.

// TestHeldRequestsMemory measures what a held request costs through the
// whole server: 10,000 requests held over in-memory connections, the
// connections' buffers, fasthttp's contexts and the handlers' goroutines
// included (and the test's client ends of the connections, so the figure
// is an upper bound). The goal is 10,000 held polls in under 300 MB.
func TestHeldRequestsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 10,000 requests")
	}
	const n = 10000
	ts, ln := newTestServer(t, Config{})
	h := ts.srv.Hub()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		if _, err := io.WriteString(c, "GET /t/hold?k=u"+strconv.Itoa(i)+"&wait=60 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); h.Held() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("held %d of %d", h.Held(), n)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / n
	stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
	t.Logf("per held request: %.0f B of heap, %.0f B of goroutine stack; %d held: %.0f MB",
		heap, stack, n, (heap+stack)*n/1e6)
	if heap+stack > 30e3 {
		t.Errorf("a held request costs %.0f B, over the 30 kB of 10,000 in 300 MB", heap+stack)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- ts.srv.Shutdown(ctx) }()
	br := bufio.NewReader(nil)
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		br.Reset(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d at shutdown: %v", i, err)
		}
		_ = res.Body.Close()
		c.Close()
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	t.Logf("%d held requests answered at shutdown in %v", n, time.Since(start))
}
