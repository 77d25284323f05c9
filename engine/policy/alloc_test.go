//go:build !race

package policy

import "testing"

// The race detector allocates on its own, so this runs only without it.

func TestEvaluateAllocs(t *testing.T) {
	a, _ := genuineSession(t, 512, 8)
	c, err := Compile(Default())
	if err != nil {
		t.Fatal(err)
	}
	in := Input{ValuesCollected: true, ValuesMatch: true, Agg: a, Enrolled: true, UserMismatch: true}
	var v Verdict
	c.Evaluate(&in, &v) // grows v's slices once, as a pooled verdict would have
	allocs := testing.AllocsPerRun(100, func() { c.Evaluate(&in, &v) })
	if allocs != 0 {
		t.Fatalf("Evaluate allocates %v times", allocs)
	}
	if !v.IDVMatching || len(v.Info) != 2 || len(v.Violations) != 1 {
		t.Fatalf("the benchmark session does not exercise Evaluate: %+v", v)
	}
}
