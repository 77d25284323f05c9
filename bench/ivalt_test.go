package bench_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/bench"
)

// TestIvaltScenario runs the ivalt scenario briefly against the real
// server in this process: users enrolled with mobile numbers, sign-ins
// through /ivalt completed in the closed loop without errors (each one's
// polls answered 422 before the device's approval and 200 after it), five
// requests counted for each, and the figures in the result files.
func TestIvaltScenario(t *testing.T) {
	addr, cid, key, admin := startServerAdmin(t)
	out := t.TempDir()
	var log bytes.Buffer
	r, err := bench.Execute(context.Background(), bench.Options{
		Scenario: bench.ScenarioIvalt, Addr: addr, CID: cid, APIKey: key, AdminKey: admin, ServerPID: os.Getpid(),
		IvaltUsers: 400, Connections: 4, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond,
		OutDir: out, Log: &log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	a := r.Ivalt
	if a == nil || a.Users != 400 || a.SignIns == 0 || a.PerSec <= 0 || math.Abs(a.RequestsPerSec-5*a.PerSec) > 0.5 ||
		a.SignIn.Count != a.SignIns || len(a.Errors) != 0 {
		t.Fatalf("result %+v\n%s", a, log.String())
	}
	md, _ := os.ReadFile(filepath.Join(out, "latest.md"))
	if !bytes.Contains(md, []byte("| sign-ins per second through /ivalt (durable, 4 workers) |")) {
		t.Fatalf("markdown:\n%s", md)
	}
	// One user allows ten sign-ins: a window longer than they take is
	// refused as understated, naming the flag that enrolls more.
	_, err = bench.Execute(context.Background(), bench.Options{
		Scenario: bench.ScenarioIvalt, Addr: addr, CID: cid, APIKey: key, AdminKey: admin,
		IvaltUsers: 1, Connections: 1, Duration: 3 * time.Second, Warmup: time.Millisecond, Log: &log,
	})
	if err == nil || !strings.Contains(err.Error(), "--ivalt-users") {
		t.Fatalf("one user for a 3 s window: %v", err)
	}
	// Without the admin key the scenario cannot enroll anyone.
	if _, err := bench.Execute(context.Background(), bench.Options{Scenario: bench.ScenarioIvalt, Addr: addr, CID: cid, APIKey: key}); err == nil {
		t.Fatal("the ivalt scenario ran without an admin key")
	}
}
