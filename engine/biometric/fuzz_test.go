package biometric

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// FuzzAggregateDecode feeds Decode any bytes. It must never panic; it either
// refuses them with ErrCorrupt (leaving the aggregate empty) or accepts
// exactly the bytes AppendBinary makes of what it decoded, and the decoded
// aggregate is a state Fold can continue from: folding one more frame gives
// an aggregate that encodes and decodes again.
func FuzzAggregateDecode(f *testing.F) {
	for _, dim := range []int{1, 4, 8, 16} {
		for seed := range uint64(3) {
			var tmpl *Template
			if seed == 1 {
				tmpl = &Template{Version: 77, Vec: make([]float32, dim)}
				tmpl.Vec[0] = 1
			}
			a, _ := session(f, dim, seed, tmpl)
			enc := a.AppendBinary(nil)
			f.Add(enc)
			f.Add(enc[:len(enc)/2])
		}
		f.Add(NewAggregate(dim).AppendBinary(nil))
	}
	f.Add(NewAggregate(0).AppendBinary(nil))
	f.Add([]byte{})
	f.Add([]byte{aggFormat, 0xff})

	f.Fuzz(func(t *testing.T, b []byte) {
		var a, p Aggregate
		a.Reset(3)
		p.Reset(3)
		perr := p.DecodeForPolicy(b)
		if perr != nil && (!errors.Is(perr, ErrCorrupt) || p.Frames() != 0 || p.Dim() != 3) {
			t.Fatalf("refused DecodeForPolicy: %v, left %d frames, dim %d", perr, p.Frames(), p.Dim())
		}
		if err := a.Decode(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if a.Frames() != 0 || a.Dim() != 3 {
				t.Fatalf("refused decode left %d frames, dim %d", a.Frames(), a.Dim())
			}
			return
		}
		// What Decode accepts, DecodeForPolicy accepts, with the same
		// fields for a policy to read.
		if perr != nil || !samePolicyView(&a, &p) {
			t.Fatalf("DecodeForPolicy (%v) differs from Decode:\n%s\n%s", perr, &a, &p)
		}
		enc := a.AppendBinary(nil)
		if !bytes.Equal(enc, b) {
			t.Fatalf("accepted bytes are not canonical:\n in  %x\n out %x", b, enc)
		}
		var c Aggregate
		c.Reset(5) // a reused value of another shape
		if err := c.Decode(enc); err != nil {
			t.Fatalf("re-encoding refused: %v", err)
		}
		if !equalAggregates(&a, &c) {
			t.Fatalf("re-decoded aggregate differs:\n%s\n%s", &a, &c)
		}
		_ = a.String()

		if a.Dim() == 0 || a.Dim() > 64 || a.Frames() > 1<<20 {
			return // folding is exercised where it is cheap and in contract
		}
		s := NewScorer(DefaultThresholds(), a.Dim())
		fr := Frame{Seq: 1 << 40, TS: 1 << 50, Type: FaceFrame, Faces: 1, Quality: 1, Liveness: 1,
			Embedding: make([]byte, 4*a.Dim())}
		fr.Embedding[3] = 0x3f // 0.5 in the first component
		tmpl := &Template{Version: 9, Vec: make([]float32, a.Dim())}
		tmpl.Vec[0] = 1
		s.Fold(&a, &fr, tmpl)
		fr.Type, fr.Seq = DocumentFrame, fr.Seq+1
		s.Fold(&a, &fr, tmpl)
		if err := c.Decode(a.AppendBinary(nil)); err != nil {
			t.Fatalf("fold made an undecodable aggregate: %v\n%s", err, &a)
		}
	})
}

// equalAggregates compares every field, nil and empty slices alike.
func equalAggregates(a, b *Aggregate) bool {
	return a.Face == b.Face && a.Document == b.Document && a.Violations == b.Violations &&
		a.FacePresent == b.FacePresent && a.OneFace == b.OneFace &&
		a.OneFaceLivenessSum == b.OneFaceLivenessSum && a.LiveOneFace == b.LiveOneFace &&
		a.DriverLicense == b.DriverLicense && a.DocumentLive == b.DocumentLive &&
		a.DocumentMaxLiveness == b.DocumentMaxLiveness && a.DocumentBestQuality == b.DocumentBestQuality &&
		slices.Equal(a.DocumentBest, b.DocumentBest) && slices.Equal(a.VerifiedSum, b.VerifiedSum) &&
		a.dim == b.dim && a.templateVersion == b.templateVersion && a.maxSeq == b.maxSeq &&
		slices.Equal(a.prev, b.prev) && a.run == b.run && slices.Equal(a.hashes, b.hashes)
}

// samePolicyView compares what engine/policy reads of an aggregate decoded
// by Decode (a) and by DecodeForPolicy (p).
func samePolicyView(a, p *Aggregate) bool {
	verifiedSum := len(p.DocumentBest) == 0 || slices.Equal(a.VerifiedSum, p.VerifiedSum)
	return a.Face == p.Face && a.Document == p.Document && a.Violations == p.Violations &&
		a.FacePresent == p.FacePresent && a.OneFace == p.OneFace &&
		a.OneFaceLivenessSum == p.OneFaceLivenessSum && a.LiveOneFace == p.LiveOneFace &&
		a.DriverLicense == p.DriverLicense && a.DocumentLive == p.DocumentLive &&
		a.DocumentMaxLiveness == p.DocumentMaxLiveness && a.DocumentBestQuality == p.DocumentBestQuality &&
		slices.Equal(a.DocumentBest, p.DocumentBest) && verifiedSum &&
		a.dim == p.dim && a.templateVersion == p.templateVersion && a.Frames() == p.Frames()
}
