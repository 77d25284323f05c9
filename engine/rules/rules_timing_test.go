package rules_test

import (
	"testing"

	"github.com/countersign/countersign/engine/rules"
)

// BenchmarkEvaluate evaluates the busy rule set, alternating a user with an
// assignment who passes and one without who fails every factor after
// scanning all that applies to him.
func BenchmarkEvaluate(b *testing.B) {
	c := compileBusy(b)
	ins := busyInputs()
	var res rules.Result
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rules.Evaluate(c, &ins[i&1], busyNow, &res)
	}
}

// BenchmarkResultAppendJSON renders the five factors as the APIs do.
func BenchmarkResultAppendJSON(b *testing.B) {
	c := compileBusy(b)
	var res rules.Result
	rules.Evaluate(c, &busyInputs()[1], busyNow, &res)
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		dst = res.AppendJSON(dst[:0])
	}
}
