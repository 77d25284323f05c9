package bench_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/countersign/countersign/bench"
)

// TestApprovalsScenario runs the approvals scenario briefly against the
// real server in this process: every device's poll held (the server's gauge
// says so), wake-ups and deliveries timed, approvals decided in the closed
// loop without errors, and the figures in the result files.
func TestApprovalsScenario(t *testing.T) {
	addr, cid, key, admin := startServerAdmin(t)
	out := t.TempDir()
	var log bytes.Buffer
	r, err := bench.Execute(context.Background(), bench.Options{
		Scenario: bench.ScenarioApprovals, Addr: addr, CID: cid, APIKey: key, AdminKey: admin, ServerPID: os.Getpid(),
		HeldPolls: 400, WakeSamples: 8, HeldWait: 2 * time.Second, Connections: 4, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond,
		OutDir: out, Log: &log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	a := r.Approvals
	if a == nil || a.Users != 400 || a.HeldPolls < 400 || a.Wake.Count != 8 || a.Delivery.Count != 8 || a.Decided == 0 ||
		a.PerSec <= 0 || len(a.Errors) != 0 || a.RSSHeld <= 0 {
		t.Fatalf("result %+v\n%s", a, log.String())
	}
	md, _ := os.ReadFile(filepath.Join(out, "latest.md"))
	if !bytes.Contains(md, []byte("| device long polls held at once | 400 | 10,000 |")) {
		t.Fatalf("markdown:\n%s", md)
	}
	// Without the admin key the scenario cannot enroll anyone.
	if _, err := bench.Execute(context.Background(), bench.Options{Scenario: bench.ScenarioApprovals, Addr: addr, CID: cid, APIKey: key}); err == nil {
		t.Fatal("the approvals scenario ran without an admin key")
	}
}
