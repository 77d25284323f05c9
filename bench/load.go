package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Op is one kind of request a load run sends, for example a validate of a
// seeded session or an events post of three frames.
type Op struct {
	// Name labels the operation in results ("validate", "events", "ceiling").
	Name string
	// Expect is the status of a successful answer.
	Expect int
	// Frames is the number of frames each request carries (events posts),
	// so the results can report frames per second.
	Frames int
	// Setup prepares a worker's request once: method, URI, headers shared by
	// every request of the operation. Optional.
	Setup func(req *fasthttp.Request)
	// Prepare makes req the operation's i-th request of the run (i counts
	// the operation's requests across all workers, so round-robin over a
	// pool of sessions is fair, and starts at 0 in each run). It sets
	// whatever differs between requests, usually the body; req is reused
	// by one worker. An op whose requests must not repeat across runs
	// counts them itself (EventsOp).
	Prepare func(i uint64, req *fasthttp.Request)
}

// Share is an operation and its weight in a mixed load.
type Share struct {
	Op     *Op
	Weight int
}

// Load describes one measured phase.
type Load struct {
	// Name labels the phase in results ("validate c=64", "validate open 50%").
	Name string
	// Addr is the server's host:port.
	Addr string
	// Dial replaces TCP dialing (tests use in-memory listeners); nil dials TCP.
	Dial func(addr string) (net.Conn, error)
	// LocalAddrs, when set (and Dial is not), are the source addresses the
	// workers' connections are bound to, round-robin: on loopback,
	// 127.0.0.2, 127.0.0.3, ... make one generator look like several
	// clients to a server's per-address policy.
	LocalAddrs []string
	// EndOnTime makes an open loop offer what the generator can send, up
	// to Rate: a worker that finds its slot already past sends at once
	// and counts the request from then, and the phase ends when its
	// window does in real time. Without it, a generator behind schedule
	// keeps sending the window's slots after the window, and charges each
	// the wait (which is right for a server that falls behind, and wrong
	// for an overload phase, where the generator cannot keep up by
	// design and the server's answers are what is measured).
	EndOnTime bool
	// Ops are the operations sent, interleaved by weight (request n is the
	// operation at n in a fixed cycle where each appears Weight times).
	Ops []Share
	// Connections is the number of workers, each with its own connection.
	Connections int
	// Rate, when positive, makes the phase an open loop: requests are
	// scheduled every 1/Rate seconds whether or not earlier ones were
	// answered, and a free worker takes the next slot. Zero is a closed loop:
	// each worker sends its next request as soon as the previous is answered.
	Rate float64
	// Duration is the measured window; Warmup runs the same load before it,
	// unmeasured.
	Duration, Warmup time.Duration
	// Step is the resolution of the throughput timeline; 0 means 250 ms.
	Step time.Duration
	// Timeout bounds one request; 0 means 10 s.
	Timeout time.Duration
	// Watch are processes whose CPU and memory are sampled during the
	// measured window (the server, and the load generator itself).
	Watch []Watched
}

// Watched names a process to sample.
type Watched struct {
	Role string // "server", "client", "ceiling"
	PID  int
}

// Phase is the result of one Load.
type Phase struct {
	Name string `json:"name"`
	// Role says what the phase measures in a suite: "ceiling", "max"
	// (closed loop at full concurrency), "c1" (one connection: service
	// time), "open" (a fraction of the measured max), "events", "mixed".
	Role string `json:"role,omitempty"`
	// Fraction is, for an open loop of a suite, the rate as a fraction of
	// the measured maximum.
	Fraction    float64 `json:"fractionOfMax,omitempty"`
	Loop        string  `json:"loop"` // "closed" or "open"
	Connections int     `json:"connections"`
	Rate        float64 `json:"rate,omitempty"` // open loop: scheduled requests per second
	Duration    float64 `json:"durationSec"`    // measured window
	Warmup      float64 `json:"warmupSec"`
	Step        float64 `json:"stepSec"`
	// Ops has one entry per operation of the phase.
	Ops []OpResult `json:"ops"`
	// Late counts open-loop slots that were sent more than 1 ms after their
	// intended time because no worker was free: a sign the rate is past
	// what the server (or the generator) sustains.
	Late int64 `json:"late,omitempty"`
	// RetryWaits counts, in a closed loop, measured 429 and 503 answers
	// whose Retry-After the worker waited out before its next request, as
	// a client should (an open loop's next slot is another client's).
	RetryWaits int64 `json:"retryWaits,omitempty"`
	// Pacing says, for an open loop, what timed the sends: "timerfd" (the
	// kernel's high-resolution timer), "go-timer" (where there is no
	// timerfd; sends may leave up to a millisecond late when idle), or
	// "mixed" (some workers could not get one).
	Pacing string `json:"pacing,omitempty"`
	// Usage is the CPU and memory of each watched process.
	Usage []Usage `json:"usage,omitempty"`
	// Transactions is, for a transaction phase (RunTransactions), what its
	// transactions measured as wholes.
	Transactions *TxnResult `json:"transactions,omitempty"`
}

// Op returns the phase's result for the named operation.
func (p *Phase) Op(name string) *OpResult {
	for i := range p.Ops {
		if p.Ops[i].Op == name {
			return &p.Ops[i]
		}
	}
	return nil
}

// UsageOf returns the usage of the watched process with the given role.
func (p *Phase) UsageOf(role string) *Usage {
	for i := range p.Usage {
		if p.Usage[i].Role == role {
			return &p.Usage[i]
		}
	}
	return nil
}

// OtherCPU is the CPU, in cores, that processes other than the watched
// ones and the kernel's threads used during the phase (neighbours on a
// shared machine), and whether it is known. The processes' own times
// include the interrupts that landed while they ran, so they are compared
// with the machine's process and interrupt time together. /proc/stat is
// sampled at each clock tick, so on partly idle CPUs it misses short runs:
// the figure is a lower bound, good for telling a quiet machine from a
// busy one, not an exact account.
func (p *Phase) OtherCPU() (float64, bool) {
	m := p.UsageOf("machine")
	if m == nil {
		return 0, false
	}
	other := m.CPU + m.IRQ - m.KernelThreads
	for _, u := range p.Usage {
		if u.Role != "machine" && u.Error == "" {
			other -= u.CPU
		}
	}
	return max(other, 0), true
}

// ErrNoOps is returned by Run for a load without operations.
var ErrNoOps = errors.New("bench: load has no operations")

// Run sends the load and measures it. It returns early, with what was
// measured so far, when ctx ends.
func Run(ctx context.Context, l Load) (*Phase, error) {
	if len(l.Ops) == 0 {
		return nil, ErrNoOps
	}
	if err := phaseDefaults(&l.Connections, &l.Step, &l.Timeout, l.Duration); err != nil {
		return nil, err
	}
	var cycle []int // op index of each position in the mix cycle
	for i, s := range l.Ops {
		for range max(s.Weight, 1) {
			cycle = append(cycle, i)
		}
	}
	open := l.Rate > 0
	steps := int((l.Duration + l.Step - 1) / l.Step)
	r := &runner{
		l:       l,
		cycle:   cycle,
		open:    open,
		steps:   steps,
		counter: make([]atomic.Uint64, len(l.Ops)),
	}
	if open {
		r.interval = float64(time.Second) / l.Rate
	}

	// Workers dial lazily on their first request: the warmup absorbs
	// connection setup.
	workers := make([]*worker, l.Connections)
	for i := range workers {
		w, err := r.newWorker(i)
		if err != nil {
			return nil, err
		}
		workers[i] = w
	}

	r.start = time.Now().Add(10 * time.Millisecond)
	r.measure = r.start.Add(l.Warmup)
	r.end = r.measure.Add(l.Duration)

	mon := startMonitor(l.Watch, r.measure, r.end, l.Step)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()
	usage := mon.stop()

	ph := &Phase{
		Name:        l.Name,
		Loop:        "closed",
		Connections: l.Connections,
		Rate:        l.Rate,
		Duration:    l.Duration.Seconds(),
		Warmup:      l.Warmup.Seconds(),
		Step:        l.Step.Seconds(),
		Usage:       usage,
	}
	if open {
		ph.Loop = "open"
		precise := 0
		for _, w := range workers {
			if w.pace != nil && w.pace.precise() {
				precise++
			}
		}
		switch precise {
		case len(workers):
			ph.Pacing = "timerfd"
		case 0:
			ph.Pacing = "go-timer"
		default:
			ph.Pacing = "mixed" // some workers got no timerfd (descriptors short?)
		}
	}
	measured := l.Duration
	if ctx.Err() != nil {
		measured = max(time.Since(r.measure), 0)
	}
	for _, w := range workers {
		ph.Late += w.late
		ph.RetryWaits += w.held
	}
	for i := range l.Ops {
		total := newRecorder(open, steps)
		for _, w := range workers {
			total.merge(w.rec[i])
		}
		ph.Ops = append(ph.Ops, total.result(l.Ops[i].Op, measured, l.Step))
	}
	for _, w := range workers {
		w.hc.CloseIdleConnections()
	}
	return ph, ctx.Err()
}

// phaseDefaults applies a phase's defaults: one connection at least, 250 ms
// steps, 10 s per request; the duration must be given.
func phaseDefaults(connections *int, step, timeout *time.Duration, duration time.Duration) error {
	*connections = max(*connections, 1)
	if *step <= 0 {
		*step = 250 * time.Millisecond
	}
	if *timeout <= 0 {
		*timeout = 10 * time.Second
	}
	if duration <= 0 {
		return errors.New("bench: load duration must be positive")
	}
	return nil
}

type runner struct {
	l                   Load
	cycle               []int
	open                bool
	steps               int
	interval            float64 // open loop: nanoseconds between slots
	start, measure, end time.Time
	seq                 atomic.Uint64   // next request (closed) or slot (open)
	counter             []atomic.Uint64 // next index per op
}

// worker is one connection and its own recorders.
type worker struct {
	r    *runner
	hc   *fasthttp.HostClient
	reqs []*fasthttp.Request // one per op, prepared once by Setup
	resp *fasthttp.Response
	rec  []*recorder
	late int64
	held int64  // measured answers whose Retry-After the worker waited out
	pace *pacer // open loops: the precise clock of the worker's sends
}

func (r *runner) newWorker(i int) (*worker, error) {
	l := r.l
	dial := l.Dial
	if dial == nil && len(l.LocalAddrs) > 0 {
		src := l.LocalAddrs[i%len(l.LocalAddrs)]
		ip := net.ParseIP(src)
		if ip == nil {
			return nil, fmt.Errorf("bench: source address %q is not an IP address", src)
		}
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: l.Timeout}
		dial = func(addr string) (net.Conn, error) { return d.Dial("tcp", addr) }
	}
	w := &worker{
		r: r,
		hc: &fasthttp.HostClient{
			Addr:                      l.Addr,
			Dial:                      dial,
			MaxConns:                  1, // one connection per worker, no pipelining
			ReadTimeout:               l.Timeout,
			WriteTimeout:              l.Timeout,
			MaxIdemponentCallAttempts: 1, // a failure is counted, never retried
			NoDefaultUserAgentHeader:  true,
			DisablePathNormalizing:    true,
			MaxIdleConnDuration:       time.Minute,
		},
		resp: &fasthttp.Response{},
	}
	for _, s := range l.Ops {
		req := &fasthttp.Request{}
		req.Header.SetHost(l.Addr)
		req.Header.SetMethod(fasthttp.MethodPost)
		if s.Op.Setup != nil {
			s.Op.Setup(req)
		}
		w.reqs = append(w.reqs, req)
		w.rec = append(w.rec, newRecorder(r.open, r.steps))
	}
	return w, nil
}

func (w *worker) run(ctx context.Context) {
	r := w.r
	if r.open {
		w.pace = newPacer()
		defer w.pace.close()
	}
	var timer *time.Timer
	for ctx.Err() == nil {
		n := r.seq.Add(1) - 1
		var intended time.Time
		if r.open {
			intended = r.start.Add(time.Duration(float64(n) * r.interval))
			if r.l.EndOnTime {
				if now := time.Now(); intended.Before(now) {
					intended = now
				}
			}
			if !intended.Before(r.end) {
				return
			}
			if !w.pace.waitUntil(ctx, intended, &timer) {
				return
			}
		}
		k := r.cycle[n%uint64(len(r.cycle))]
		op := r.l.Ops[k].Op
		req := w.reqs[k]
		op.Prepare(r.counter[k].Add(1)-1, req)
		sent := time.Now()
		if !r.open {
			if !sent.Before(r.end) {
				return
			}
			intended = sent
		}
		err := w.hc.Do(req, w.resp)
		done := time.Now()
		// In a closed loop a worker is a client, and a client told to come
		// back later waits, as the SDK does: one that re-sends at once
		// measures how fast the server refuses, not what it sustains. In
		// an open loop the next slot is another client's request, which
		// arrives on schedule regardless.
		var hold time.Duration
		if err == nil && !r.open {
			hold = retryAfter(w.resp)
		}
		if intended.Before(r.measure) {
			w.resp.Reset()
			if err != nil {
				backoff(err)
			}
			w.holdOff(ctx, hold)
			continue
		}
		if r.open && sent.Sub(intended) > time.Millisecond {
			w.late++
		}
		rec := w.rec[k]
		if err != nil {
			rec.errs[errorKind(err)]++
			w.resp.Reset()
			backoff(err)
			continue
		}
		recordLatency(rec.latency, done.Sub(intended))
		if rec.service != nil {
			recordLatency(rec.service, done.Sub(sent))
		}
		if code := w.resp.StatusCode(); code == op.Expect {
			rec.ok++
			if rec.admitted != nil {
				recordLatency(rec.admitted, done.Sub(sent))
			}
			// Timeline steps are by completion time within the window.
			if s := int(done.Sub(r.measure) / r.l.Step); s >= 0 && s < len(rec.steps) {
				rec.steps[s]++
			}
		} else {
			rec.status[code]++
		}
		w.resp.Reset()
		if hold > 0 {
			w.held++
			w.holdOff(ctx, hold)
		}
	}
}

// maxRetryAfter bounds the wait a Retry-After header can impose on a worker.
const maxRetryAfter = 10 * time.Second

// retryAfter is how long a 429 or 503 answer asks its client to wait (its
// Retry-After in seconds, at most maxRetryAfter), and 0 for any other.
func retryAfter(resp *fasthttp.Response) time.Duration {
	if c := resp.StatusCode(); c != fasthttp.StatusTooManyRequests && c != fasthttp.StatusServiceUnavailable {
		return 0
	}
	secs, err := fasthttp.ParseUint(bytes.TrimSpace(resp.Header.Peek(fasthttp.HeaderRetryAfter)))
	if err != nil || secs <= 0 {
		return 0
	}
	return min(time.Duration(secs)*time.Second, maxRetryAfter)
}

// holdOff waits d, or until the phase ends or ctx is done.
func (w *worker) holdOff(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	d = min(d, time.Until(w.r.end))
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// backoff pauses a worker after a connection failure so that a server that
// is down is not hammered by a busy loop of dials.
func backoff(err error) {
	if errors.Is(err, fasthttp.ErrTimeout) {
		return
	}
	time.Sleep(5 * time.Millisecond)
}

// errorKind names a transport error briefly, for the errors table.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "connection closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return "connection refused"
	case strings.Contains(msg, "connection reset"):
		return "connection reset"
	case strings.Contains(msg, "broken pipe"):
		return "broken pipe"
	}
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return fmt.Sprintf("error: %s", msg)
}
