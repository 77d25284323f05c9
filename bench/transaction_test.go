package bench

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestTransactionWaitsOutProcessing: a validate answered 202 processing is
// sent again after the answer's retryAfterMS, counted as a wait of its
// transaction (not as an error), and the wait runs from the first send to
// the final answer.
func TestTransactionWaitsOutProcessing(t *testing.T) {
	var validates atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/v1/sessions":
			ctx.SetStatusCode(fasthttp.StatusCreated)
			ctx.SetBodyString(ceilingSession)
		case "/v1/validate":
			// Every other validate is "processing" the first time.
			if validates.Add(1)%2 == 1 {
				ctx.SetStatusCode(fasthttp.StatusAccepted)
				ctx.SetBodyString(`{"errorMessage":"processing","retryAfterMS":15}`)
				return
			}
			ctx.SetBodyString(SampleDecision)
		default:
			if string(ctx.Request.Header.Peek("x-collect-token")) != "ct_4Y9kQ2mX7pL1vB8nR3sT6wZ0cF5hJ2dG" {
				ctx.SetStatusCode(fasthttp.StatusUnauthorized)
				return
			}
			ctx.SetStatusCode(fasthttp.StatusAccepted)
			ctx.SetBodyString(ceilingEvents)
		}
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown()
	script, err := NewTxnScript("cid", "key", "run", []string{"u1"}, 1, 3, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := RunTransactions(context.Background(), TxnLoad{
		Name: "t", Addr: ln.Addr().String(), Script: script, Connections: 1,
		Duration: 400 * time.Millisecond, Step: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	tx, txn, val := p.Transactions, p.Op(TxnOpTransaction), p.Op(TxnOpValidate)
	if tx.Validates == 0 || tx.Processing != tx.Validates || tx.Retries != tx.Processing || val.ErrorCount() != 0 {
		t.Fatalf("%+v; validate %+v", tx, val)
	}
	if tx.ProcessingShare() != 1 || tx.Waits.Count != tx.Processing || tx.Waits.P50 < 15000 {
		t.Fatalf("waits %+v, want each at least the 15 ms asked", tx.Waits)
	}
	if txn.Requests != tx.Validates || tx.FramesPerSec != tx.PerSec*12 {
		t.Fatalf("%d transactions, %+v", txn.Requests, tx)
	}
}

// TestPerMinute averages a timeline into whole minutes, from two on.
func TestPerMinute(t *testing.T) {
	step := 30 * time.Second
	if got := perMinute([]float64{1, 2, 3}, step); got != nil {
		t.Errorf("under two minutes: %v", got)
	}
	got := perMinute([]float64{1, 3, 5, 7, 9}, step)
	if len(got) != 2 || got[0] != 2 || got[1] != 6 {
		t.Errorf("per minute %v, want [2 6] (the partial minute left out)", got)
	}
}
