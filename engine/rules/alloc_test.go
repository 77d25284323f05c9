//go:build !race

package rules_test

import (
	"testing"

	"github.com/countersign/countersign/engine/rules"
)

// The race detector allocates on its own, so this runs only without it.

func TestEvaluateAllocs(t *testing.T) {
	c := compileBusy(t)
	ins := busyInputs()
	// The user id comes from a request buffer, as the server has it: the map
	// lookup by string(bytes) must not copy it.
	buf := []byte(`{"userID":"alice"}`)
	ins[0].UserID = buf[11:16]
	var res rules.Result
	dst := make([]byte, 0, 4096)
	for i := range ins {
		in := &ins[i]
		allocs := testing.AllocsPerRun(200, func() {
			rules.Evaluate(c, in, busyNow, &res)
			dst = res.AppendJSON(dst[:0])
		})
		t.Logf("input %d (user %s): %v allocations per Evaluate and AppendJSON", i, in.UserID, allocs)
		if allocs != 0 {
			t.Errorf("input %d: Evaluate and AppendJSON allocate %v times", i, allocs)
		}
	}

	// The inputs exercise what they are meant to: alice passes her own
	// fence and window, dave fails after scanning every org-wide one.
	rules.Evaluate(c, &ins[0], busyNow, &res)
	if res.Failed() || res.Factors[rules.FactorGeoFence].Match != "home-alice" ||
		res.Factors[rules.FactorTimeWindow].Match != "night" {
		t.Fatalf("alice: %+v", res)
	}
	rules.Evaluate(c, &ins[1], busyNow, &res)
	for _, f := range []rules.Factor{rules.FactorGeoFence, rules.FactorTimeWindow, rules.FactorIP, rules.FactorDevice} {
		if res.Factors[f].Outcome != rules.Fail {
			t.Fatalf("dave: %s is %s, want FAIL", f, res.Factors[f].Outcome)
		}
	}
}
