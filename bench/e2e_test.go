package bench_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/countersign/countersign/bench"
	"github.com/countersign/countersign/server"
	"github.com/countersign/countersign/store"
)

// startServer runs the real server over a real Pebble (in memory) on a
// loopback socket, with one organization.
func startServer(t *testing.T) (addr, cid, apiKey string) {
	t.Helper()
	addr, cid, apiKey, _ = startServerAdmin(t)
	return addr, cid, apiKey
}

// startServerAdmin is startServer, with the organization's admin key too.
func startServerAdmin(t *testing.T) (addr, cid, apiKey, adminKey string) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: "/data", FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	org, key, err := db.CreateOrg("bench", nil)
	if err != nil {
		t.Fatal(err)
	}
	if adminKey, err = db.AddAPIKey(org.ID, store.ScopeAdmin); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, db)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = db.Close()
	})
	return ln.Addr().String(), org.CID, key, adminKey
}

// TestSuiteEndToEnd runs the whole suite, briefly, against the real server:
// seeding through the API, the in-process ceiling, closed and open loops,
// events, and the result files.
func TestSuiteEndToEnd(t *testing.T) {
	addr, cid, key := startServer(t)
	out := t.TempDir()
	var log bytes.Buffer
	r, err := bench.Execute(context.Background(), bench.Options{
		Addr: addr, CID: cid, APIKey: key, ServerPID: os.Getpid(),
		Ceiling:     bench.CeilingInproc,
		Connections: 4, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Step: 100 * time.Millisecond,
		Sessions: 18, EventSessions: 4, EventBodies: 4,
		OutDir: out, ValidateBodies: filepath.Join(out, "bodies.jsonl"), Log: &log,
		DiskProbe: 100 * time.Millisecond, DiskProbeDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("progress:\n%s", log.String())
	if r.Disk == nil || r.Disk.Latency.Count == 0 {
		t.Fatalf("disk probe %+v, notes %q", r.Disk, r.Notes)
	}

	if s := r.Seed; s == nil || len(s.Sessions) != 18 || s.Failed != 0 || s.Unexpected != 0 || len(s.EventSessions) != 4 {
		t.Fatalf("seed %+v", r.Seed)
	}
	if r.Seed.ByScenario["enroll"] != 2 || r.Seed.ByScenario["genuine"] != 8 || r.Seed.ByScenario["values_only"] != 4 ||
		r.Seed.ByScenario["impostor"] != 2 || r.Seed.ByScenario["replay"] != 2 {
		t.Fatalf("mix %v", r.Seed.ByScenario)
	}
	roles := []string{}
	for _, p := range r.Phases {
		roles = append(roles, p.Role)
		for _, op := range p.Ops {
			if op.Requests == 0 || op.ErrorCount() != 0 {
				t.Errorf("%s %s: %d requests, errors %v", p.Name, op.Op, op.Requests, op.Errors)
			}
		}
	}
	if got := strings.Join(roles, ","); got != "ceiling,max,c1,open,open,ceiling-open,events,ceiling-events,ceiling-transaction,transaction" {
		t.Fatalf("phases %s", got)
	}
	h := r.Headline
	if h.Ratio <= 0 || h.C1P50Us <= 0 || len(h.OpenP99Us) != 2 || h.EventsFramesPerSec <= 0 || h.EventsRatio <= 0 {
		t.Fatalf("headline %+v", h)
	}
	if x := h.Transaction; x == nil || x.PerSec <= 0 || x.CeilingPerSec <= 0 || x.Ratio <= 0 || x.CPUPerTxnUs <= 0 || x.CPUPerFrameUs <= 0 {
		t.Fatalf("transaction headline %+v", x)
	}
	// The ceiling's open loop runs at validate's 50% rate and is headlined
	// beside validate's; both open loops were timed by the precise clock.
	if open, co := r.Phases[3], r.Phases[5]; co.Rate != open.Rate || co.Fraction != 0.5 || h.CeilingOpenP99Us["0.5"] <= 0 ||
		open.Pacing != "timerfd" || co.Pacing != "timerfd" || len(r.Settings.CeilingOpenFractions) != 1 {
		t.Fatalf("ceiling open loop %+v against %+v; headline %+v", co, open, h)
	}
	md, _ := os.ReadFile(filepath.Join(out, "latest.md"))
	if !bytes.Contains(md, []byte("; the ceiling at the same rate: p99 ")) || !bytes.Contains(md, []byte("| CPU per request |")) ||
		!bytes.Contains(md, []byte("\n- disk: ")) {
		t.Fatalf("markdown:\n%s", md)
	}
	if u := r.Phases[1].UsageOf("server"); u == nil || u.CPU <= 0 {
		t.Fatalf("server usage %+v", u)
	}
	bodies, _ := os.ReadFile(filepath.Join(out, "bodies.jsonl"))
	if n := bytes.Count(bodies, []byte("\n")); n != 18 {
		t.Fatalf("%d validate bodies written", n)
	}
	for _, f := range []string{"latest.json", "latest.md", "latest.svg"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// TestTransactionEndToEnd plays whole transactions against the real server
// and its ceiling: every transaction is one session, TxnPosts events posts
// and at least one validate, each counted under its kind, and a validate
// answered 202 is sent again, not counted as an error.
func TestTransactionEndToEnd(t *testing.T) {
	addr, cid, key := startServer(t)
	var log bytes.Buffer
	r, err := bench.Execute(context.Background(), bench.Options{
		Scenario: bench.ScenarioTransaction, Addr: addr, CID: cid, APIKey: key, ServerPID: os.Getpid(),
		Ceiling:     bench.CeilingInproc,
		Connections: 4, Duration: 400 * time.Millisecond, Warmup: 100 * time.Millisecond, Step: 100 * time.Millisecond,
		TxnUsers: 2, TxnSets: 2, Log: &log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(r.Phases) != 2 || r.Phases[0].Role != "ceiling-transaction" || r.Phases[1].Role != "transaction" {
		t.Fatalf("phases %+v", r.Phases)
	}
	for _, p := range r.Phases {
		tx := p.Transactions
		txn, ses, ev, val := p.Op(bench.TxnOpTransaction), p.Op(bench.TxnOpSession), p.Op(bench.TxnOpEvents), p.Op(bench.TxnOpValidate)
		if tx == nil || txn == nil || ses == nil || ev == nil || val == nil || txn.Requests < 5 {
			t.Fatalf("%s: %+v", p.Name, p)
		}
		for _, op := range p.Ops {
			if op.ErrorCount() != 0 {
				t.Errorf("%s %s: errors %v", p.Name, op.Op, op.Errors)
			}
		}
		// Requests in flight when the window closes make the counts of a
		// kind differ from the transactions' by at most one per connection.
		if d := ses.Requests - txn.Requests; d < 0 || d > 4 {
			t.Errorf("%s: %d sessions for %d transactions", p.Name, ses.Requests, txn.Requests)
		}
		if d := ev.Requests - bench.TxnPosts*txn.Requests; d < 0 || d > 4*bench.TxnPosts {
			t.Errorf("%s: %d events posts for %d transactions", p.Name, ev.Requests, txn.Requests)
		}
		if tx.Validates != txn.Requests || val.Requests != txn.Requests || tx.FramesPerSec != tx.PerSec*float64(bench.TxnPosts*3) {
			t.Errorf("%s: %+v, %d validates answered 200, %d transactions", p.Name, tx, val.Requests, txn.Requests)
		}
		if tx.Processing > 0 && (tx.Retries < tx.Processing || tx.Waits.Count != tx.Processing) {
			t.Errorf("%s: %d processing, %d retries, %d waits", p.Name, tx.Processing, tx.Retries, tx.Waits.Count)
		}
	}
	if x := r.Headline.Transaction; x == nil || x.Ratio <= 0 {
		t.Fatalf("headline %+v", r.Headline)
	}
}

// TestMixedEndToEnd runs the mixed scenario as an open loop.
func TestMixedEndToEnd(t *testing.T) {
	addr, cid, key := startServer(t)
	r, err := bench.Execute(context.Background(), bench.Options{
		Scenario: bench.ScenarioMixed, Addr: addr, CID: cid, APIKey: key,
		Connections: 4, Rate: 200, Duration: 300 * time.Millisecond, Sessions: 9, EventSessions: 2, EventBodies: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Phases[0]
	v, e := p.Op("validate"), p.Op("events")
	if p.Loop != "open" || v == nil || e == nil || v.Requests+e.Requests < 50 || e.Requests == 0 || v.ErrorCount()+e.ErrorCount() != 0 {
		t.Fatalf("mixed phase %+v", p)
	}
}
