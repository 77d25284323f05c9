package bench_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/countersign/countersign/bench"
)

// TestUnloqScenario runs the unloq scenario briefly against the real
// server in this process: every authenticate held (the server's gauge says
// so), each decided from its device and its answer timed, and the figures
// in the result files.
func TestUnloqScenario(t *testing.T) {
	addr, cid, key, admin := startServerAdmin(t)
	out := t.TempDir()
	var log bytes.Buffer
	r, err := bench.Execute(context.Background(), bench.Options{
		Scenario: bench.ScenarioUnloq, Addr: addr, CID: cid, APIKey: key, AdminKey: admin, ServerPID: os.Getpid(),
		HeldPolls: 200, WakeSamples: 200, OutDir: out, Log: &log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	u := r.Unloq
	if u == nil || u.Users != 200 || u.Held < 200 || u.Decided != 200 || u.Answer.Count != 200 || len(u.Errors) != 0 || u.RSSHeld <= 0 {
		t.Fatalf("result %+v\n%s", u, log.String())
	}
	md, _ := os.ReadFile(filepath.Join(out, "latest.md"))
	if !bytes.Contains(md, []byte("| authenticate requests held at once | 200 ")) {
		t.Fatalf("markdown:\n%s", md)
	}
	if _, err := bench.Execute(context.Background(), bench.Options{Scenario: bench.ScenarioUnloq, Addr: addr, CID: cid, APIKey: key}); err == nil {
		t.Fatal("the unloq scenario ran without an admin key")
	}
}
