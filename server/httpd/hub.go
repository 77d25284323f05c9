package httpd

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fasthttp"
)

// DefaultMaxHeld is the default bound on requests held at once (Hub): twice
// the 10,000 held long polls a server is sized for, so a burst of
// reconnecting devices is held rather than refused.
const DefaultMaxHeld = 20000

// ErrHubFull is Subscribe's refusal when as many requests are held as the
// hub's bound allows.
var ErrHubFull = errors.New("httpd: as many requests are held as the server allows")

// HubKey names what held requests wait for: a user's pending approvals, one
// approval's decision. It is a fixed-size value so that finding a topic
// costs no allocation. Keys may be hashes (TopicKey): two things that share
// a key only wake each other's waiters for nothing, and a woken waiter
// re-checks its condition, so a collision costs a store read, never a
// missed wake.
type HubKey [24]byte

// TopicKey is the key of id within organization org, in a family of topics
// named by kind (so a user and an approval of the same id do not share a
// key): a kind byte and 64-bit hashes of org and id.
func TopicKey(kind byte, org, id string) HubKey {
	var k HubKey
	k[0] = kind
	putUint64(k[8:16], xxhash.Sum64String(org))
	putUint64(k[16:24], xxhash.Sum64String(id))
	return k
}

// The topic kinds the surfaces share: one surface changes an approval and
// publishes, another's held request wakes. The organization is the
// store.OrgID's text, the id a user id or an approval id.
const (
	// TopicUserApprovals: a user's pending approvals changed (one was
	// created, decided, cancelled): the device's long poll re-reads them.
	TopicUserApprovals byte = 1
	// TopicApproval: one approval was decided, cancelled or expired: the
	// requester's long poll and a held authenticate re-read it.
	TopicApproval byte = 2
)

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// WakeReason says why Waiter.Wait returned.
type WakeReason uint8

const (
	// WakePublished: the topic was published (something changed; re-check).
	WakePublished WakeReason = iota + 1
	// WakeTimeout: the deadline passed with nothing published.
	WakeTimeout
	// WakeShutdown: the server is shutting down; answer at once.
	WakeShutdown
)

func (r WakeReason) String() string {
	switch r {
	case WakePublished:
		return "published"
	case WakeTimeout:
		return "timeout"
	case WakeShutdown:
		return "shutdown"
	}
	return "none"
}

// hubShards spreads topics over locks, so publishers of different users
// do not queue on one mutex.
const hubShards = 32

// Hub holds requests that wait for a change of state (a long poll for a
// user's approvals, a held authenticate) and wakes them: when the state
// changes (Publish), when their deadline passes, and all at once when the
// server shuts down. A held request is a fasthttp handler blocked in
// Waiter.Wait: it costs its goroutine, a pooled Waiter and no CPU while it
// waits.
//
// A waiter is subscribed before the condition is checked, so a change
// made between the check and the wait is never lost:
//
//	w, err := hub.Subscribe(key)
//	if err != nil { ... 503 }
//	defer w.Close()
//	for {
//		if ready() { answer; return }          // store read
//		if w.Wait(deadline) != WakePublished { answer what is there; return }
//	}
//
// A publish marks every waiter of its key; a waiter marked while it was
// checking returns from its next Wait at once. Waiters stay subscribed
// until Close, so publishes during a re-check are not lost either.
//
// The number of waiters is bounded (MaxHeld), apart from the in-flight
// bound (Admission): held requests cost memory, not CPU, and thousands
// waiting must not shut out requests that work. One organization (the org
// hash of its keys, TopicKey) may hold at most three quarters of them, so
// that one tenant's devices or backends, however many, leave the others
// room to hold theirs.
type Hub struct {
	max    int64
	perOrg int64
	held   atomic.Int64
	orgMu  sync.Mutex
	orgs   map[uint64]int64 // waiters held per organization hash
	done   chan struct{}    // closed by Shutdown
	closed atomic.Bool
	once   sync.Once
	pool   sync.Pool
	shards [hubShards]hubShard

	wakes    [WakeShutdown + 1]*metrics.Counter
	refusals *metrics.Counter
}

type hubShard struct {
	mu     sync.Mutex
	topics map[HubKey]*Waiter // the first waiter of each key's list
	_      [48]byte           // the rest of a 64-byte cache line: shards' locks apart
}

// NewHub makes a hub holding at most max requests (0 is DefaultMaxHeld,
// negative no bound), with its metrics on set.
func NewHub(max int, set *metrics.Set) *Hub {
	if max == 0 {
		max = DefaultMaxHeld
	}
	h := &Hub{max: int64(max), perOrg: int64(max - max/4), orgs: make(map[uint64]int64), done: make(chan struct{})}
	for i := range h.shards {
		h.shards[i].topics = make(map[HubKey]*Waiter)
	}
	set.NewGauge(`countersign_held_requests`, func() float64 { return float64(h.held.Load()) })
	for _, r := range []WakeReason{WakePublished, WakeTimeout, WakeShutdown} {
		h.wakes[r] = set.NewCounter(`countersign_held_wakes_total{reason="` + r.String() + `"}`)
	}
	h.refusals = set.NewCounter(`countersign_requests_shed_total{reason="too_many_held"}`)
	return h
}

func (h *Hub) shard(k *HubKey) *hubShard {
	// FNV-1a over the whole key: its leading bytes (a kind, an
	// organization) are shared by many keys.
	x := uint32(2166136261)
	for _, b := range k {
		x = (x ^ uint32(b)) * 16777619
	}
	return &h.shards[x%hubShards]
}

// Held is the number of subscribed waiters.
func (h *Hub) Held() int { return int(h.held.Load()) }

// Subscribe registers a waiter for key, to be closed by the caller (see
// Hub for the pattern). Over the bound it returns ErrHubFull and holds
// nothing. After Shutdown it returns a waiter whose Wait answers
// WakeShutdown at once.
func (h *Hub) Subscribe(key HubKey) (*Waiter, error) {
	w, _ := h.pool.Get().(*Waiter)
	if w == nil {
		w = &Waiter{hub: h, c: make(chan struct{}, 1)}
	}
	w.key = key
	if h.closed.Load() {
		return w, nil // not listed: Wait sees done closed
	}
	if n := h.held.Add(1); h.max > 0 && (n > h.max || !h.addOrg(&key)) {
		h.held.Add(-1)
		h.refusals.Inc()
		h.pool.Put(w)
		return nil, ErrHubFull
	}
	s := h.shard(&key)
	s.mu.Lock()
	if head := s.topics[key]; head != nil {
		w.next = head
		head.prev = w
	}
	s.topics[key] = w
	s.mu.Unlock()
	w.shard = s
	return w, nil
}

// orgOf is the organization part of a key (TopicKey's hash of org).
func orgOf(k *HubKey) uint64 {
	var v uint64
	for i := range 8 {
		v |= uint64(k[8+i]) << (8 * i)
	}
	return v
}

// addOrg counts one more waiter of key's organization, unless it holds
// its share already.
func (h *Hub) addOrg(k *HubKey) bool {
	org := orgOf(k)
	h.orgMu.Lock()
	defer h.orgMu.Unlock()
	n := h.orgs[org]
	if n >= h.perOrg {
		return false
	}
	h.orgs[org] = n + 1
	return true
}

func (h *Hub) removeOrg(k *HubKey) {
	org := orgOf(k)
	h.orgMu.Lock()
	if n := h.orgs[org] - 1; n > 0 {
		h.orgs[org] = n
	} else {
		delete(h.orgs, org)
	}
	h.orgMu.Unlock()
}

// Publish wakes every waiter of key (those in Wait return WakePublished;
// those checking their condition return from their next Wait at once)
// and reports how many it marked.
func (h *Hub) Publish(key HubKey) int {
	s := h.shard(&key)
	n := 0
	s.mu.Lock()
	for w := s.topics[key]; w != nil; w = w.next {
		select {
		case w.c <- struct{}{}:
		default: // already marked and not yet woken
		}
		n++
	}
	s.mu.Unlock()
	return n
}

// Shutdown wakes every waiter at once with WakeShutdown, and makes every
// later Wait return it at once. It may be called more than once.
func (h *Hub) Shutdown() {
	h.once.Do(func() {
		h.closed.Store(true)
		close(h.done)
	})
}

// Waiter is one held request's place in the hub, from Subscribe to Close.
// It is pooled: nothing may use it after Close. It is used by one
// goroutine (Publish and Shutdown reach it through the hub).
type Waiter struct {
	hub        *Hub
	shard      *hubShard // nil when not listed (after Shutdown)
	key        HubKey
	prev, next *Waiter
	c          chan struct{} // one mark: a publish since the last wake
	timer      *time.Timer   // made on first Wait, reset by each
}

// C receives a mark when the waiter's key is published, for a caller
// that selects on more than the hub (with Done); Wait is the usual way.
func (w *Waiter) C() <-chan struct{} { return w.c }

// Done is closed when the server shuts down.
func (w *Waiter) Done() <-chan struct{} { return w.hub.done }

// Wait blocks until the key is published (since Subscribe or the last
// Wait), deadline passes, or the hub shuts down, and says which. A
// deadline already past still reports a publish that came before.
func (w *Waiter) Wait(deadline time.Time) WakeReason {
	r := w.wait(deadline)
	w.hub.wakes[r].Inc()
	return r
}

func (w *Waiter) wait(deadline time.Time) WakeReason {
	select {
	case <-w.hub.done:
		return WakeShutdown
	case <-w.c:
		return WakePublished
	default:
	}
	d := time.Until(deadline)
	if d <= 0 {
		return WakeTimeout
	}
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		// Since Go 1.23 Reset and Stop leave no stale tick in the channel.
		w.timer.Reset(d)
	}
	defer w.timer.Stop()
	select {
	case <-w.hub.done:
		return WakeShutdown
	case <-w.c:
		return WakePublished
	case <-w.timer.C:
		return WakeTimeout
	}
}

// Close unsubscribes w and returns it to the pool.
func (w *Waiter) Close() {
	h := w.hub
	if s := w.shard; s != nil {
		s.mu.Lock()
		switch {
		case w.prev != nil:
			w.prev.next = w.next
		case w.next != nil:
			s.topics[w.key] = w.next
		default:
			delete(s.topics, w.key)
		}
		if w.next != nil {
			w.next.prev = w.prev
		}
		s.mu.Unlock()
		h.held.Add(-1)
		if h.max > 0 {
			h.removeOrg(&w.key)
		}
	}
	// Unlisted, no publish reaches w any more: drop a mark left unread,
	// so the next request to use w does not wake for this one's.
	select {
	case <-w.c:
	default:
	}
	w.shard, w.prev, w.next = nil, nil, nil
	h.pool.Put(w)
}

// HoldFor is how long a request of r that asks to be held for wait (its
// ?wait=) is held: wait, at most r.MaxHold; nothing on a route that does
// not hold.
func (r *Route) HoldFor(wait time.Duration) time.Duration {
	if !r.Holds || wait <= 0 {
		return 0
	}
	return min(wait, r.MaxHold)
}

// maxWaitDigits bounds the ?wait= a request may send: more than any
// route's hold, few enough to parse without overflow.
const maxWaitDigits = 6

// WaitParam reads the request's ?wait= (whole seconds; absent is 0) and
// returns the deadline it is held until, clamped to the route's MaxHold
// (Route.HoldFor). A value that is not a whole number of seconds is
// answered 400 invalid_field and ok is false.
func (c *Ctx) WaitParam(now time.Time) (deadline time.Time, ok bool) {
	v := c.RC.QueryArgs().Peek("wait")
	if len(v) == 0 {
		return now, true
	}
	if len(v) > maxWaitDigits {
		return now, c.Fail(ErrInvalidField, msgWait)
	}
	n, err := fasthttp.ParseUint(v)
	if err != nil {
		return now, c.Fail(ErrInvalidField, msgWait)
	}
	return now.Add(c.Route.HoldFor(time.Duration(n) * time.Second)), true
}

var msgWait = []byte("wait must be a whole number of seconds.")

// Hold subscribes the request to key on the server's hub (see Hub for the
// pattern). Over the hub's bound it answers 503 overloaded with
// Retry-After in the route's envelope, holding nothing, and ok is false.
func (c *Ctx) Hold(key HubKey) (w *Waiter, ok bool) {
	w, err := c.Srv.hub.Subscribe(key)
	if err != nil {
		return nil, c.Fail(ErrOverloaded, nil)
	}
	return w, true
}
