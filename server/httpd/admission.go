package httpd

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// DefaultMaxInFlight is the default bound on requests in flight (Admission):
// enough for the store to group many commits into one sync, few enough
// that an admitted request does not queue behind hundreds of others. See
// PERF.md, "Overload", for the measurement it comes from.
const DefaultMaxInFlight = 64

// DefaultShedHold is how long a refusal is held back before it is written
// (Admission); see PERF.md, "Overload".
const DefaultShedHold = 250 * time.Millisecond

// Admission bounds the requests a server works on at once, so that under
// overload it answers the requests it admits as fast as when it is not
// overloaded, and refuses the others at once, before reading their body
// or touching the store. Only routes that use the store count: they are
// the work; the probes, metrics and documents are cheap, and a probe
// refused under load would have an orchestrator restart a server that is
// busy, not broken.
//
// A refusal is 503 overloaded with Retry-After, pre-rendered in each
// route's envelope when the server is made: refusing costs a header and a
// write, far less than serving, so refusals cannot take the CPU the
// admitted requests need.
//
// A refused request's answer is held back for ShedHold (default
// DefaultShedHold) before it is written. Refusing costs the server about
// half of what serving does on one core (reading the request and writing
// the answer are most of both), so clients that re-send at once, ignoring
// Retry-After, would otherwise keep the CPU busy refusing them, and the
// admitted requests would wait behind hundreds of refusals for their turn
// on it. Held, a refused connection sends nothing more until its answer
// comes: the refusals a second are bounded by the connections over the
// bound divided by the hold, and the hold costs a sleeping goroutine, not
// CPU. A client that honours Retry-After (1 s) loses nothing by it.
//
// Routes that hold a request open waiting for an event (Route.Holds) are
// not counted here but by the hub's own bound (Hub, Config.MaxHeld): a
// held request costs a goroutine and a connection, not CPU, and thousands
// waiting must not shut out the requests that work.
//
// Under overload, a route with an OverloadMax is held to that many
// requests at once, below the bound (see overloaded). The bound is sized
// for short requests: validate needs many commits in flight to group them
// into one sync. An events post costs several validates' CPU and writes
// kilobytes to the log, and the posts a server sustains need far fewer in
// flight: filling the bound with them under overload only makes each
// admitted post wait behind the others (PERF.md, "Overload"). Outside
// overload the route has the whole bound, so a client pool as large as
// the bound is served without refusals (but in the second or two after an
// overload ends, when it may be refused once).
type Admission struct {
	max      int64
	hold     time.Duration
	inFlight atomic.Int64
	routeIn  []atomic.Int64 // by route id: requests of a route with an OverloadMax in flight
	answers  [][]byte       // by route id: the 503 body in the route's envelope
	env      func(*Route) Envelope
	shed     *metrics.Counter
	now      func() time.Time // time.Now; tests set it

	mu sync.Mutex // guards the evidence of overload below
	// atBound is when a request last found the bound full.
	atBound time.Time
	// refusals counts the refusals of the second sec; prevRefusals those of
	// the second before.
	sec                    int64
	refusals, prevRefusals int64
}

// overloadMemory is how long a refusal at the bound keeps the server
// overloaded (Admission.overloaded).
const overloadMemory = time.Second

func newAdmission(max int, hold time.Duration, env func(*Route) Envelope, set *metrics.Set) *Admission {
	if max == 0 {
		max = DefaultMaxInFlight
	}
	switch {
	case hold == 0:
		hold = DefaultShedHold
	case hold < 0:
		hold = 0
	}
	a := &Admission{
		max:     int64(max),
		hold:    hold,
		routeIn: make([]atomic.Int64, len(routes)),
		answers: make([][]byte, len(routes)),
		env:     env,
		shed:    set.NewCounter(`countersign_requests_shed_total{reason="overloaded"}`),
		now:     time.Now,
	}
	for _, r := range routes {
		a.answers[r.id] = env(r)(nil, ErrOverloaded, nil)
	}
	return a
}

// counts reports whether requests of r are bounded.
func (a *Admission) counts(r *Route) bool { return a.max > 0 && r.UsesStore && !r.Holds }

// enter reports whether a request of r may be served now; when it may and
// r counts, the caller must call leave once it is answered.
func (a *Admission) enter(r *Route) bool {
	if !a.counts(r) {
		return true
	}
	if a.inFlight.Add(1) > a.max {
		a.inFlight.Add(-1)
		a.noteRefusal(true)
		return false
	}
	if in := a.routeCount(r); in != nil {
		// Counted whether or not the server is overloaded, so that the
		// count is right the moment it becomes so.
		if in.Add(1) > int64(r.OverloadMax) && a.overloaded() {
			in.Add(-1)
			a.inFlight.Add(-1)
			a.noteRefusal(false)
			return false
		}
	}
	return true
}

// routeCount is the count of r's requests in flight when r has an
// OverloadMax, and nil otherwise (or for a route made after the server, in
// tests).
func (a *Admission) routeCount(r *Route) *atomic.Int64 {
	if r.OverloadMax <= 0 || r.id >= len(a.routeIn) {
		return nil
	}
	return &a.routeIn[r.id]
}

// noteRefusal records a refusal, at the bound or at a route's OverloadMax,
// as evidence of overload.
func (a *Admission) noteRefusal(atBound bool) {
	now := a.now()
	a.mu.Lock()
	if atBound {
		a.atBound = now
	}
	a.roll(now)
	a.refusals++
	a.mu.Unlock()
}

// roll moves the refusal counts on to now's second; a.mu is held.
func (a *Admission) roll(now time.Time) {
	switch sec := now.Unix(); {
	case sec == a.sec:
	case sec == a.sec+1:
		a.sec, a.prevRefusals, a.refusals = sec, a.refusals, 0
	default:
		a.sec, a.prevRefusals, a.refusals = sec, 0, 0
	}
}

// overloaded reports whether the server is overloaded: more clients are
// sending than it has places for. That is shown by a request that found
// the bound full in the last overloadMemory, or by more refusals in the
// current or the previous second than the bound has places. The second
// keeps the evidence while the routes held to their OverloadMax keep the
// bound from filling; and it does not feed itself: a client pool no larger
// than the bound, refused once at a route's OverloadMax (in the second
// after an overload ended, say), waits out its Retry-After, and is too
// few to keep the server overloaded.
func (a *Admission) overloaded() bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.atBound.IsZero() && now.Sub(a.atBound) < overloadMemory {
		return true
	}
	a.roll(now)
	return a.refusals > a.max || a.prevRefusals > a.max
}

// full reports whether a request of r would be refused now (for a
// client that waits for "100 Continue" before sending its body).
func (a *Admission) full(r *Route) bool { return a.counts(r) && a.inFlight.Load() >= a.max }

// leave ends a request that enter admitted.
func (a *Admission) leave(r *Route) {
	if a.counts(r) {
		if in := a.routeCount(r); in != nil {
			in.Add(-1)
		}
		a.inFlight.Add(-1)
	}
}

// holdRefusal waits out the hold before a refusal is written (see
// Admission). time.Sleep reuses the goroutine's own timer: no allocation.
func (a *Admission) holdRefusal() {
	if a.hold > 0 {
		time.Sleep(a.hold)
	}
}

// InFlight is the number of counted requests being served.
func (a *Admission) InFlight() int { return int(a.inFlight.Load()) }

// refuse answers ctx 503 overloaded in r's envelope, without allocating:
// the body is the pre-rendered one, set without a copy.
func (a *Admission) refuse(ctx *fasthttp.RequestCtx, r *Route) {
	a.shed.Inc()
	ctx.Response.Header.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.Header.SetBytesKV(headerRetryAfter, retryAfterOne)
	if r.id < len(a.answers) {
		ctx.Response.SetBodyRaw(a.answers[r.id])
		return
	}
	ctx.Response.SetBody(a.env(r)(nil, ErrOverloaded, nil)) // a route made after the server (tests)
}

var (
	headerRetryAfter = []byte(fasthttp.HeaderRetryAfter)
	retryAfterOne    = []byte("1")
)
