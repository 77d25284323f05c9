package httpd

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// routeHold holds a request on the key named by its ?k= for its ?wait=,
// and answers why it woke.
var routeHold = NewRoute(Route{Name: "test_hold", Holds: true, MaxHold: 2 * time.Second, Envelope: appendTestError})

func serveHold(c *Ctx) {
	deadline, ok := c.WaitParam(time.Now())
	if !ok {
		return
	}
	w, ok := c.Hold(TopicKey('t', "org", string(c.RC.QueryArgs().Peek("k"))))
	if !ok {
		return
	}
	defer w.Close()
	c.Status = 200
	c.ContentType = "text/plain"
	c.Out = append(c.Out[:0], w.Wait(deadline).String()...)
}

// wake is what one held waiter saw: why it woke, and when.
type wake struct {
	i      int
	reason WakeReason
	at     time.Time
}

// holdAll holds n waiters, the i-th on key(i), each on a goroutine of its
// own blocked in Wait until deadline (as fasthttp's handlers are), and
// returns once all are subscribed. Each reports its wake on the channel;
// one refused by the bound reports reason 0.
func holdAll(tb testing.TB, h *Hub, n int, key func(int) HubKey, deadline time.Time) <-chan wake {
	tb.Helper()
	out := make(chan wake, n)
	var subscribed sync.WaitGroup
	subscribed.Add(n)
	for i := range n {
		go func() {
			w, err := h.Subscribe(key(i))
			subscribed.Done()
			if err != nil {
				out <- wake{i: i}
				return
			}
			r := w.Wait(deadline)
			at := time.Now()
			// Closed before it is reported, so a test that has read
			// every wake may count the hub's held waiters as zero.
			w.Close()
			out <- wake{i, r, at}
		}()
	}
	subscribed.Wait()
	return out
}

func numberedKey(i int) HubKey { return TopicKey('u', "org", fmt.Sprint(i)) }

func newHub(max int) *Hub { return NewHub(max, metrics.NewSet()) }

// TestHubPublishWakesItsKey: a publish wakes every waiter of its key, and
// only those.
func TestHubPublishWakesItsKey(t *testing.T) {
	h := newHub(0)
	a, b := TopicKey('u', "org", "alice"), TopicKey('u', "org", "bob")
	woken := holdAll(t, h, 4, func(i int) HubKey {
		if i == 3 {
			return b
		}
		return a
	}, time.Now().Add(time.Minute))
	time.Sleep(10 * time.Millisecond) // let them reach Wait, for the latency logged
	sent := time.Now()
	if n := h.Publish(a); n != 3 {
		t.Errorf("Publish(alice) marked %d waiters, want 3", n)
	}
	for range 3 {
		w := <-woken
		if w.i == 3 || w.reason != WakePublished {
			t.Fatalf("waiter %d woke with %v", w.i, w.reason)
		}
		t.Logf("waiter %d woken %v after the publish", w.i, w.at.Sub(sent))
	}
	select {
	case w := <-woken:
		t.Fatalf("bob's waiter woke (%v) for alice's publish", w.reason)
	case <-time.After(20 * time.Millisecond):
	}
	if h.Held() != 1 {
		t.Errorf("held %d after three closed, want 1", h.Held())
	}
	h.Publish(b)
	if w := <-woken; w.i != 3 || w.reason != WakePublished {
		t.Errorf("bob's waiter: %d %v", w.i, w.reason)
	}
	if h.Publish(a) != 0 {
		t.Error("a closed waiter is still subscribed")
	}
}

// TestHubPublishBeforeWaitIsKept: a publish between Subscribe and Wait
// (while the caller checks its condition) is returned by the next Wait,
// even one whose deadline has passed, and only once; a publish before
// Subscribe is not (the caller's check after subscribing sees its change).
func TestHubPublishBeforeWaitIsKept(t *testing.T) {
	h := newHub(0)
	k := TopicKey('a', "org", "approval")
	h.Publish(k)
	w, err := h.Subscribe(k)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if r := w.Wait(time.Now()); r != WakeTimeout {
		t.Errorf("a publish before Subscribe woke the waiter: %v", r)
	}
	h.Publish(k)
	h.Publish(k) // marks coalesce
	if r := w.Wait(time.Now().Add(-time.Second)); r != WakePublished {
		t.Errorf("a publish before Wait was lost: %v", r)
	}
	if r := w.Wait(time.Now().Add(10 * time.Millisecond)); r != WakeTimeout {
		t.Errorf("one publish woke twice: %v", r)
	}
}

// TestHubTimeout: with nothing published, Wait returns at its deadline;
// a pooled waiter reused after Close does not wake for its last user's
// publish, and its timer serves the next deadline.
func TestHubTimeout(t *testing.T) {
	h := newHub(0)
	k := TopicKey('u', "org", "carol")
	for i := range 3 {
		w, _ := h.Subscribe(k)
		start := time.Now()
		if r := w.Wait(start.Add(20 * time.Millisecond)); r != WakeTimeout {
			t.Fatalf("round %d: %v, want timeout", i, r)
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Errorf("round %d: timed out after %v, before the deadline", i, d)
		}
		h.Publish(k) // left unread: Close drops it
		w.Close()
	}
}

// TestHubBound: past its bound the hub refuses a waiter and holds
// nothing; a closed one gives its place back; a negative bound holds any
// number.
func TestHubBound(t *testing.T) {
	h := newHub(3)
	var ws []*Waiter
	for i := range 3 {
		w, err := h.Subscribe(numberedKey(i))
		if err != nil {
			t.Fatalf("waiter %d under the bound: %v", i, err)
		}
		ws = append(ws, w)
	}
	if w, err := h.Subscribe(numberedKey(3)); !errors.Is(err, ErrHubFull) || w != nil {
		t.Fatalf("the fourth of three: %v %v", w, err)
	}
	if h.Held() != 3 || h.Publish(numberedKey(3)) != 0 {
		t.Errorf("the refused waiter is held: %d", h.Held())
	}
	ws[0].Close()
	w, err := h.Subscribe(numberedKey(3))
	if err != nil {
		t.Fatalf("after a close: %v", err)
	}
	w.Close()
	ws[1].Close()
	ws[2].Close()
	if h.Held() != 0 {
		t.Errorf("held %d after all closed", h.Held())
	}

	u := newHub(-1)
	woken := holdAll(t, u, 100, numberedKey, time.Now().Add(time.Minute))
	if u.Held() != 100 {
		t.Errorf("unbounded: held %d of 100", u.Held())
	}
	u.Shutdown()
	for range 100 {
		if w := <-woken; w.reason != WakeShutdown {
			t.Fatalf("unbounded waiter %d: %v", w.i, w.reason)
		}
	}
}

// TestHubShutdownWakesAll: shutting down wakes all of 10,000 held
// waiters at once, and a waiter subscribed after it returns at once.
func TestHubShutdownWakesAll(t *testing.T) {
	const n = 10000
	h := newHub(0)
	woken := holdAll(t, h, n, numberedKey, time.Now().Add(time.Minute))
	start := time.Now()
	h.Shutdown()
	var last time.Time
	for range n {
		w := <-woken
		if w.reason != WakeShutdown {
			t.Fatalf("waiter %d: %v", w.i, w.reason)
		}
		if w.at.After(last) {
			last = w.at
		}
	}
	t.Logf("%d waiters woken by shutdown within %v", n, last.Sub(start))
	if h.Held() != 0 {
		t.Errorf("held %d after all woke and closed", h.Held())
	}
	h.Shutdown() // again: no panic
	w, err := h.Subscribe(numberedKey(0))
	if err != nil {
		t.Fatal(err)
	}
	if r := w.Wait(time.Now().Add(time.Minute)); r != WakeShutdown {
		t.Errorf("a waiter after shutdown: %v", r)
	}
	w.Close()
	if h.Held() != 0 {
		t.Errorf("a waiter after shutdown is counted: %d", h.Held())
	}
}

// TestHubNoLostWake: many publishers change state and publish while many
// waiters loop subscribe-check-wait; every waiter sees the state it
// waits for before its (generous) deadline. A lost wake shows as a
// timeout. Run under -race.
func TestHubNoLostWake(t *testing.T) {
	const keys, waitersPerKey, publishers, target = 16, 8, 8, 200
	h := newHub(0)
	var state [keys]atomic.Int64
	var done sync.WaitGroup
	errs := make(chan error, keys*waitersPerKey)
	for k := range keys {
		for range waitersPerKey {
			done.Add(1)
			go func() {
				defer done.Done()
				w, err := h.Subscribe(numberedKey(k))
				if err != nil {
					errs <- err
					return
				}
				defer w.Close()
				deadline := time.Now().Add(10 * time.Second)
				for state[k].Load() < target {
					runtime.Gosched() // widen the window between the check and the wait
					if r := w.Wait(deadline); r != WakePublished {
						errs <- fmt.Errorf("key %d: %v at state %d", k, r, state[k].Load())
						return
					}
				}
			}()
		}
	}
	// Exactly one publish per change, so the last change of each key has
	// one publish to be lost by.
	for p := range publishers {
		go func() {
			for i := p; i < keys*target; i += publishers {
				k := i % keys
				state[k].Add(1)
				h.Publish(numberedKey(k))
			}
		}()
	}
	done.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if h.Held() != 0 {
		t.Errorf("held %d after all returned", h.Held())
	}
}

// TestHubMemoryPerWaiter measures what a held waiter costs: its share of
// the heap (the pooled Waiter, its channel and timer, the topic map) and
// of goroutine stacks. It bounds the sum loosely (the goal: 10,000 held
// polls, connections included, in under 300 MB) and logs the figures.
func TestHubMemoryPerWaiter(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 10,000 goroutines")
	}
	const n = 10000
	h := newHub(0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	woken := holdAll(t, h, n, numberedKey, time.Now().Add(time.Minute))
	time.Sleep(50 * time.Millisecond) // every goroutine in Wait, its timer made
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
	t.Logf("per held waiter: %.0f B of heap (hub and test's report channel), %.0f B of goroutine stack", heap, stack)
	if heap+stack > 16<<10 {
		t.Errorf("a held waiter costs %.0f B, over 16 KiB", heap+stack)
	}
	h.Shutdown()
	for range n {
		<-woken
	}
}

// TestHeldRequests: over HTTP, a held request is answered when its key is
// published, at its wait clamped to the route's MaxHold, at once when the
// server shuts down, and past MaxHeld 503 overloaded without holding (its
// answer held back like any refusal, Admission); a wait that is not a
// number of seconds is refused.
func TestHeldRequests(t *testing.T) {
	ts, ln := newTestServer(t, Config{MaxHeld: 2})
	h := ts.srv.Hub()
	hold := func(query string) <-chan string {
		out := make(chan string, 1)
		go func() {
			status, body := rawRequest(t, ln, "GET /t/hold?"+query+" HTTP/1.1\r\nHost: x\r\n\r\n")
			out <- fmt.Sprint(status, " ", body)
		}()
		return out
	}
	heldBy := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); h.Held() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("held %d, want %d", h.Held(), n)
			}
		}
	}

	alice := hold("k=alice&wait=25")
	heldBy(1)
	h.Publish(TopicKey('t', "org", "alice"))
	if got := <-alice; got != "200 published" {
		t.Errorf("published: %s", got)
	}

	start := time.Now()
	if got := <-hold("k=bob&wait=25"); got != "200 timeout" {
		t.Errorf("clamped wait: %s", got)
	}
	if d := time.Since(start); d < routeHold.MaxHold || d > 10*routeHold.MaxHold {
		t.Errorf("wait=25 on a route of MaxHold %v held for %v", routeHold.MaxHold, d)
	}
	if got := <-hold("k=bob"); got != "200 timeout" {
		t.Errorf("no wait: %s", got)
	}
	for _, bad := range []string{"wait=soon", "wait=-1", "wait=1e3", "wait=99999999999"} {
		if got := <-hold("k=bob&" + bad); got != "400 test:invalid_field:wait must be a whole number of seconds." {
			t.Errorf("%s: %s", bad, got)
		}
	}

	held := []<-chan string{hold("k=carol&wait=25"), hold("k=dave&wait=25")}
	heldBy(2)
	refused := time.Now()
	if got := <-hold("k=erin&wait=25"); got != "503 test:overloaded" {
		t.Errorf("over MaxHeld: %s", got)
	}
	if d := time.Since(refused); d < DefaultShedHold {
		t.Errorf("the refusal over MaxHeld came after %v, not held back for %v", d, DefaultShedHold)
	}
	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- ts.srv.Shutdown(ctx) }()
	for _, c := range held {
		if got := <-c; got != "200 shutdown" {
			t.Errorf("at shutdown: %s", got)
		}
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	t.Logf("held requests answered and server shut down in %v", time.Since(start))
	if d := time.Since(start); d > routeHold.MaxHold {
		t.Errorf("shutdown waited out the holds: %v", d)
	}
}

// TestHubMetrics: the hub reports the requests it holds, its wakes by
// reason, and its refusals.
func TestHubMetrics(t *testing.T) {
	set := metrics.NewSet()
	h := NewHub(2, set)
	a, _ := h.Subscribe(numberedKey(1))
	b, _ := h.Subscribe(numberedKey(2))
	if _, err := h.Subscribe(numberedKey(3)); err == nil {
		t.Fatal("the third of two was held")
	}
	h.Publish(numberedKey(1))
	a.Wait(time.Now())
	b.Wait(time.Now())
	var out strings.Builder
	set.WritePrometheus(&out)
	for _, want := range []string{
		"countersign_held_requests 2\n",
		`countersign_held_wakes_total{reason="published"} 1` + "\n",
		`countersign_held_wakes_total{reason="timeout"} 1` + "\n",
		`countersign_held_wakes_total{reason="shutdown"} 0` + "\n",
		`countersign_requests_shed_total{reason="too_many_held"} 1` + "\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
	a.Close()
	b.Close()
}

// TestRouteHoldNeedsMaxHold: a route that holds requests without a bound
// on how long is refused when it is registered.
func TestRouteHoldNeedsMaxHold(t *testing.T) {
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "test_unbounded_hold holds requests but has no MaxHold") {
			t.Errorf("registered, or the wrong panic: %v", p)
		}
	}()
	NewRoute(Route{Name: "test_unbounded_hold", Holds: true})
}

// TestHubShareOfOneOrg: one organization holds at most three quarters of
// the hub's bound; another still gets its waiters held, and a closed
// waiter gives its organization's place back.
func TestHubShareOfOneOrg(t *testing.T) {
	h := newHub(8)
	var ws []*Waiter
	for i := range 6 {
		w, err := h.Subscribe(TopicKey(TopicUserApprovals, "org-a", fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("org A's waiter %d of its 6: %v", i, err)
		}
		ws = append(ws, w)
	}
	if w, err := h.Subscribe(TopicKey(TopicUserApprovals, "org-a", "6")); !errors.Is(err, ErrHubFull) || w != nil {
		t.Fatalf("org A's seventh of a bound of 8: %v %v", w, err)
	}
	for i := range 2 {
		w, err := h.Subscribe(TopicKey(TopicApproval, "org-b", fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("org B's waiter %d while org A holds its share: %v", i, err)
		}
		defer w.Close()
	}
	if h.Held() != 8 {
		t.Errorf("held %d, want 8", h.Held())
	}
	ws[0].Close()
	w, err := h.Subscribe(TopicKey(TopicUserApprovals, "org-a", "6"))
	if err != nil {
		t.Fatalf("org A after one of its own closed: %v", err)
	}
	w.Close()
	for _, w := range ws[1:] {
		w.Close()
	}
	if len(h.orgs) != 1 { // org B's two, closed by the defers
		t.Errorf("organizations counted: %v", h.orgs)
	}
}
