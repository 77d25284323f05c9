package policy

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/countersign/countersign/engine/biometric"
)

// genuineSession folds an enrolled user's session of n face frames of dim
// components and one matching driver license, scored against the template.
func genuineSession(tb testing.TB, dim, n int) (*biometric.Aggregate, *biometric.Template) {
	r := rand.New(rand.NewPCG(uint64(dim), uint64(n)))
	face := make([]float32, dim)
	for i := range face {
		face[i] = float32(r.NormFloat64())
	}
	frame := func(noise float64) []byte {
		b := make([]byte, 0, 4*dim)
		for _, x := range face {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x+float32(noise*r.NormFloat64())))
		}
		return b
	}
	var frames []biometric.Frame
	for i := range n {
		frames = append(frames, biometric.Frame{Seq: uint64(i + 1), TS: int64(i) * 300, Type: biometric.FaceFrame,
			Faces: 1, Quality: 0.9, Liveness: 0.95, Embedding: frame(0.1)})
	}
	frames = append(frames, biometric.Frame{Seq: uint64(n + 1), TS: int64(n) * 300, Type: biometric.DocumentFrame,
		DocType: biometric.DocDriverLicense, Quality: 0.9, Liveness: 0.9, Embedding: frame(0.3)})
	s := biometric.NewScorer(biometric.DefaultThresholds(), dim)
	var tmpl biometric.Template
	if refusal := s.Enroll(frames[:n], nil, 1, &tmpl); refusal != biometric.Enrolled {
		tb.Fatalf("enroll: %s", refusal)
	}
	a := biometric.NewAggregate(dim)
	for i := range frames {
		s.Fold(a, &frames[i], &tmpl)
	}
	return a, &tmpl
}

func TestEvaluateGenuine(t *testing.T) {
	a, _ := genuineSession(t, 512, 8)
	c, err := Compile(Default())
	if err != nil {
		t.Fatal(err)
	}
	var v Verdict
	c.Evaluate(&Input{ValuesCollected: true, ValuesMatch: true, Agg: a, Enrolled: true}, &v)
	if v.Score != TotalWeight || !v.VerifiedAction || len(v.Info) != 2 || len(v.Violations) != 0 {
		t.Fatalf("%+v", v)
	}
	// Slices are reused, and a second evaluation does not keep old entries.
	c.Evaluate(&Input{Agg: biometric.NewAggregate(512), UserMismatch: true}, &v)
	if v.Score != 0 || v.VerifiedAction || len(v.Info) != 0 || len(v.Violations) != 1 ||
		v.Violations[0] != (ViolationCount{Kind: biometric.UserMismatch, Count: 1}) {
		t.Fatalf("%+v", v)
	}
}

func TestEvaluateNilAggregate(t *testing.T) {
	c, _ := Compile(Default())
	var v Verdict
	c.Evaluate(&Input{ValuesCollected: true, ValuesMatch: true}, &v)
	if v.Score != 2000 || v.VerifiedAction {
		t.Fatalf("%+v", v)
	}
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		edit func(*Policy)
		want error
	}{
		{func(p *Policy) { p.Enrollment = 2 }, ErrEnrollment},
		{func(p *Policy) { p.Verdict = 2 }, ErrVerdict},
		{func(p *Policy) { p.Weights.Enrolled = -1; p.Weights.ValuesMatch++ }, ErrWeights},
		{func(p *Policy) { p.Weights.Enrolled = math.MaxInt }, ErrWeights},
		{func(p *Policy) { p.Weights.Enrolled++ }, ErrWeights},
		{func(p *Policy) { p.MinScore = TotalWeight + 1 }, ErrMinScore},
		{func(p *Policy) { p.Thresholds.IDVMatch = float32(math.NaN()) }, biometric.ErrThresholds},
	}
	for i, c := range cases {
		p := Default()
		c.edit(&p)
		if _, err := Compile(p); !errors.Is(err, c.want) {
			t.Errorf("case %d: Compile = %v, want %v", i, err, c.want)
		}
	}
	if EnrollMode(7).String() != "unknown" || VerdictMode(7).String() != "unknown" {
		t.Error("unknown mode names")
	}
}

// TestJSONRoundTrip checks that every valid policy survives JSON and Parse.
func TestJSONRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		p := Default()
		p.Thresholds.FaceMatch = r.Float32()
		p.Thresholds.Liveness = r.Float32()
		p.Thresholds.MinVerifiedRatio = r.Float32()
		p.Thresholds.MaxFrameGapMs = 1 + r.Int64N(biometric.MaxFrameGapLimit)
		p.Thresholds.MinEnrollFrames = 1 + r.IntN(biometric.MaxFrames)
		w := [numWeights]int{}
		left := TotalWeight
		for i := range numWeights - 1 {
			w[i] = r.IntN(left + 1)
			left -= w[i]
		}
		w[numWeights-1] = left
		p.Weights = Weights{w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9]}
		p.Enrollment = EnrollMode(r.IntN(2))
		p.Verdict = VerdictMode(r.IntN(2))
		p.MinScore = r.IntN(TotalWeight + 1)
		got, err := Parse(p.JSON())
		if err != nil || got != p {
			t.Fatalf("%s: %v\n%+v\n%+v", p.JSON(), err, got, p)
		}
	}
}
