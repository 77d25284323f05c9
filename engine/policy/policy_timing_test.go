package policy

import "testing"

// BenchmarkEvaluate computes every indicator, ivScore and verifiedAction of a
// 512-d session with a document (idv_matching runs two 512-d dot products).
func BenchmarkEvaluate(b *testing.B) {
	a, _ := genuineSession(b, 512, 8)
	c, err := Compile(Default())
	if err != nil {
		b.Fatal(err)
	}
	in := Input{ValuesCollected: true, ValuesMatch: true, Agg: a, Enrolled: true}
	var v Verdict
	b.ReportAllocs()
	for b.Loop() {
		c.Evaluate(&in, &v)
	}
	if !v.VerifiedAction {
		b.Fatal("not verified")
	}
}
