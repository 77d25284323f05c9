package bench

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestOverloadLoad: connections are bound to the given source addresses,
// round-robin; an EndOnTime open loop the server cannot keep up with ends
// with its window instead of sending the slots it is behind on; the
// admitted histogram holds the successful answers only.
func TestOverloadLoad(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	sources := map[string]int{}
	var n int
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		sources[ctx.RemoteIP().String()]++
		n++
		shed := n%2 == 0
		mu.Unlock()
		if shed {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown()

	start := time.Now()
	p, err := Run(context.Background(), Load{
		Addr: ln.Addr().String(), Ops: []Share{{Op: staticOp("validate", 200)}},
		Connections: 4, LocalAddrs: []string{"127.0.0.2", "127.0.0.3"}, EndOnTime: true,
		Rate: 100000, Duration: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the phase took %v for a 300 ms window", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sources) != 2 || sources["127.0.0.2"] == 0 || sources["127.0.0.3"] == 0 {
		t.Errorf("requests by source address: %v", sources)
	}
	op := p.Ops[0]
	if op.Admitted == nil || op.Admitted.Count != op.Requests || op.Errors["HTTP 503"] == 0 {
		t.Fatalf("admitted %+v for %d successes, errors %v", op.Admitted, op.Requests, op.Errors)
	}
	if op.Admitted.P50 < 2000 {
		t.Errorf("admitted p50 %s, want the 2 ms the successes took", FormatUs(op.Admitted.P50))
	}
}

// TestOverloadHeadline: the report compares the overload phase with the
// maximum and the unloaded phase of the same operation.
func TestOverloadHeadline(t *testing.T) {
	r := &Report{Scenario: ScenarioOverload}
	phase := func(role string, rate float64, ok, shed int64, p99 float64) *Phase {
		return &Phase{Role: role, Rate: rate, Ops: []OpResult{{
			Op: "validate", RPS: float64(ok), AnswersPerSec: float64(ok + shed),
			Errors: map[string]int64{"HTTP 503": shed}, Admitted: &Latency{P99: p99},
		}}}
	}
	r.Phases = []*Phase{phase("max", 0, 1000, 0, 0), phase("unloaded", 100, 100, 0, 500), phase("overload", 10000, 950, 4000, 900)}
	r.finish(1)
	if len(r.Headline.Overload) != 1 {
		t.Fatalf("overload headline: %+v", r.Headline.Overload)
	}
	o := r.Headline.Overload[0]
	if o.GoodputRatio != 0.95 || o.P99Ratio != 1.8 || o.Shed != 4000 || o.Scheduled != 10000 || o.Offered != 4950 {
		t.Errorf("overload headline: %+v", o)
	}
}
